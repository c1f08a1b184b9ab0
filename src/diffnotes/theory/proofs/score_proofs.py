"""Proofs about scores, parameterizations and reverse processes (filled in below)."""

from __future__ import annotations

PROOFS: list = []
