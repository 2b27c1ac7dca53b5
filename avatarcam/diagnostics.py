"""Result type of `avatarcam doctor` checks, shared by the parts that contribute checks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str  # what was checked, e.g. "camera 0"
    ok: bool
    detail: str  # what was found
    fix: str = ""  # what to do when not ok (one line)
    required: bool = True  # a failed optional check is a warning, not an error
