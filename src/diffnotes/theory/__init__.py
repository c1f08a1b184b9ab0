"""The single source of every formula of the book, in SymPy (``ARCHITECTURE.md``, "Three layers").

``get_process(name)`` gives a forward process in EDM's language x = s(t) (x0 + sigma(t) n)
(``processes.py``); ``proofs`` holds every derivation with a ``verify()``; ``tables`` renders the
generated comparison tables. Used by ``book/unified-view.md``, ``book/questions.md`` and the
engine's tests.
"""

from .processes import PARAMETERIZATIONS, PROCESS_NAMES, Process, get_process  # noqa: F401

__all__ = ["get_process", "PROCESS_NAMES", "PARAMETERIZATIONS", "Process"]
