"""diffnotes: the engine behind the diffusion notes.

Layers (see DESIGN.md): ``diffnotes.theory`` holds every formula in SymPy; the numeric engine
(``data``, ``nets``, ``precond``, ``sampling``, ``train``, ``metrics``) is tested equal to it;
the book and the notebooks import both.
"""

__version__ = "0.1.0"

from .profiles import get_profile, PROFILES  # noqa: E402,F401
from .device import default_device  # noqa: E402,F401
