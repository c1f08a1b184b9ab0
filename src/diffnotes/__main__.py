"""``python -m diffnotes``: see :mod:`diffnotes.cli`."""

from .cli import main

raise SystemExit(main())
