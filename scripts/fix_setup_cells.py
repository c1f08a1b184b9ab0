"""Put every lab notebook's title first and the house setup cell second (within 80 columns).

The setup cell is a no-op inside a checkout; elsewhere (Colab, Binder) it tries to pip-install
the package from the repository address in `_config.yml` (`repository.url`, the one place it is
set) and says in one line what to do if that fails. It then makes every figure the notebook
shows fit the book's column (`diffnotes.plotting.fit_figures_to_column`). Only cell order and the setup cell's source
change; stored outputs are kept. Run: python scripts/fix_setup_cells.py [notebooks/*.ipynb]
"""

import json
import sys
from pathlib import Path

import yaml

SETUP = '''\
# Setup: a no-op inside a checkout. Elsewhere (Colab, Binder) it tries to
# pip-install the diffnotes package from the book's repository.
import importlib.util, subprocess, sys
REPO = "{url}"
if importlib.util.find_spec("diffnotes") is None:
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    if subprocess.run(pip + [f"diffnotes @ git+{{REPO}}"]).returncode:
        print(f"Could not install diffnotes from {{REPO}}: clone the "
              "repository and run `pip install -e .` in it.")
from diffnotes import get_profile
from diffnotes.plotting import fit_figures_to_column
# Stops here, naming the valid profiles, if DIFFNOTES_PROFILE is unknown.
PROFILE = get_profile()
# Every figure shown below fits the book's column: at most 7 in wide,
# no text under 10 pt.
fit_figures_to_column()
print("profile:", PROFILE.name)'''


def repository_url(root: Path = Path(".")) -> str:
    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))["repository"]["url"]


def _is_setup(cell) -> bool:
    return cell["cell_type"] == "code" and 'find_spec("diffnotes")' in "".join(cell["source"])


def _is_title(cell) -> bool:
    return cell["cell_type"] == "markdown" and "".join(cell["source"]).startswith("# ")


def fix(path: Path, url: str) -> bool:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    if _is_setup(cells[0]) and _is_title(cells[1]):
        cells[0], cells[1] = cells[1], cells[0]
    if not (_is_title(cells[0]) and _is_setup(cells[1])):
        raise SystemExit(f"{path}: expected the title and the setup cell as the first two cells")
    lines = SETUP.format(url=url).splitlines(keepends=True)
    cells[1]["source"] = lines
    new = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if new == path.read_text(encoding="utf-8"):
        return False
    path.write_text(new, encoding="utf-8")
    return True


if __name__ == "__main__":
    url = repository_url()
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("*.ipynb"))
    for p in paths:
        print(("rewrote " if fix(p, url) else "unchanged ") + str(p))
