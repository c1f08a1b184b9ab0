"""Run profiles: one setting, ``DIFFNOTES_PROFILE``, scales every notebook and CLI run.

=========  ==================  ==========================  =========================================
profile    where               budget                      used for
=========  ==================  ==========================  =========================================
quick      CI, 2 CPU cores     seconds per notebook        nbval: every cell runs, checks hold
full       a laptop CPU        minutes per notebook        stored notebook outputs shown on the site
gpu        one CUDA GPU        minutes per model           larger nets and data
=========  ==================  ==========================  =========================================

A notebook asks ``get_profile()`` for the current profile and then picks its own numbers with
``profile.pick(quick=..., full=..., gpu=...)``, so the budgets stay next to the code that spends
them and the thresholds its checks assert are stated per profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

PROFILES = ("quick", "full", "gpu")
DEFAULT_PROFILE = "full"


@dataclass(frozen=True)
class Profile:
    name: str

    def pick(self, *, quick: T, full: T, gpu: T | None = None) -> T:
        """Return the value for this profile (``gpu`` falls back to ``full`` when not given)."""
        if self.name == "quick":
            return quick
        if self.name == "gpu":
            return full if gpu is None else gpu
        return full

    @property
    def is_quick(self) -> bool:
        return self.name == "quick"

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.name


def get_profile(name: str | None = None) -> Profile:
    """The profile named by ``name`` or by ``$DIFFNOTES_PROFILE`` (default ``full``).

    An unknown name raises ``ValueError`` naming the valid profiles.
    """
    if name is None:
        name = os.environ.get("DIFFNOTES_PROFILE", DEFAULT_PROFILE)
    key = str(name).strip().lower()
    if key not in PROFILES:
        raise ValueError(
            f"unknown DIFFNOTES_PROFILE {name!r}; valid profiles: {', '.join(PROFILES)}"
        )
    return Profile(key)
