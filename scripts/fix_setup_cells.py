"""Rewrite every lab notebook's first cell to the house setup cell (within 80 columns).

The setup cell is a no-op inside a checkout; on Colab or Binder it installs the package first.
Only the cell's source changes; its stored outputs are kept (they print the profile).
Run: python scripts/fix_setup_cells.py [notebooks/*.ipynb]
"""

import json
import sys
from pathlib import Path

SETUP = '''\
# Setup: a no-op inside a checkout; on Colab or Binder it installs the
# diffnotes package first.
import importlib.util, subprocess, sys
if importlib.util.find_spec("diffnotes") is None:
    URL = "git+https://github.com/diffusion-notes/diffusion-notes"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"diffnotes @ {URL}"], check=True)
from diffnotes import get_profile
# Stops here, naming the valid profiles, if DIFFNOTES_PROFILE is unknown.
PROFILE = get_profile()
print("profile:", PROFILE.name)'''


def fix(path: Path) -> bool:
    nb = json.loads(path.read_text(encoding="utf-8"))
    first = nb["cells"][0]
    if first["cell_type"] != "code" or "find_spec(\"diffnotes\")" not in "".join(first["source"]):
        raise SystemExit(f"{path}: first cell is not the setup cell")
    lines = SETUP.splitlines(keepends=True)
    if first["source"] == lines:
        return False
    first["source"] = lines
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return True


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("*.ipynb"))
    for p in paths:
        print(("rewrote " if fix(p) else "unchanged ") + str(p))
