"""Typed errors. Every error carries *where* (a file, a profile key, a plugin) and *why*.

The CLI maps any :class:`MeshforgeError` to exit code 2 and one line ``where: reason``;
anything else reaching the CLI is a bug and is reported as such (traceback only with --debug).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any


class MeshforgeError(Exception):
    """Base of every error meshforge raises on purpose."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}" if where else reason)
        self.where = where
        self.reason = reason


class InputError(MeshforgeError):
    """An input that cannot be used: unreadable, corrupt, hostile, over a limit."""

    def __init__(self, path: object, reason: str, *, code: str = "input.unreadable") -> None:
        super().__init__(str(path) if path is not None else "<input>", reason)
        self.path = path
        self.code = code


class GenerationError(InputError):
    """A generation job that gave no usable model, with what is known of it (``provenance``: the
    provider, job id and key, its state, submissions), so the report's attempts name the job."""

    def __init__(self, path: object, reason: str, *, code: str, provenance: Mapping[str, Any]) -> None:
        super().__init__(path, reason, code=code)
        self.provenance = dict(provenance)


class ProfileError(MeshforgeError):
    """A profile (or an override) that cannot be resolved: unknown step, parameter or type."""

    def __init__(self, where: str, reason: str, choices: Iterable[str] = ()) -> None:
        self.choices = tuple(choices)
        if self.choices:
            reason = f"{reason}; valid: {', '.join(self.choices)}"
        super().__init__(where, reason)


def closest_first(word: str, choices: Iterable[str]) -> list[str]:
    """Order ``choices`` so the spellings closest to ``word`` come first (for error messages)."""
    pool = sorted(set(choices))
    if not pool:
        return []
    near = difflib.get_close_matches(word, pool, n=len(pool), cutoff=0.5)
    return near + [c for c in pool if c not in near]
