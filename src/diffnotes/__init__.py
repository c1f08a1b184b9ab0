"""diffnotes: the engine behind the diffusion notes.

``diffnotes.theory`` holds every formula in SymPy; the numeric engine evaluates it through
``diffnotes.theory.numeric`` or is tested equal to it; paper code lives in ``diffnotes.methods``;
the book and the notebooks import both. Every module's layer is in the table of
``ARCHITECTURE.md`` (the book's "How this book is built"), and ``tests/test_structure.py`` fails
on an import that points up a layer.
"""

__version__ = "0.1.0"

from .profiles import get_profile, PROFILES  # noqa: E402,F401
from .device import default_device  # noqa: E402,F401
