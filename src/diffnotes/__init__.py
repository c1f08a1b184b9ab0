"""diffnotes: the engine behind the diffusion notes.

Layers (see ``ARCHITECTURE.md`` at the repository root, or the book's "How this book is built"):
``diffnotes.theory`` holds every formula in SymPy; the numeric engine (``data``, ``nets``,
``precond``, ``chain``, ``sampling``, ``train``, ``metrics``) evaluates it through
``diffnotes.theory.numeric`` or is tested equal to it; the book and the notebooks import both.
"""

__version__ = "0.1.0"

from .profiles import get_profile, PROFILES  # noqa: E402,F401
from .device import default_device  # noqa: E402,F401
