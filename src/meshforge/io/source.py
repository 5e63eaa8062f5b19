"""Read an input file's bytes once, within the profile's size cap."""

from __future__ import annotations

from pathlib import Path

from meshforge.errors import InputError
from meshforge.types import ReadLimits, SourceFile


def read_source(path: Path, limits: ReadLimits) -> SourceFile:
    """The file's bytes; refuses directories, missing files and files over ``max_file_bytes``."""
    try:
        if path.is_dir():
            raise InputError(path, "is a folder, not a model file", code="input.unreadable")
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(path, "no such file", code="input.unreadable") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})", code="input.unreadable") from None
    if size > limits.max_file_bytes:
        raise InputError(
            path,
            f"is {size / 1e6:.1f} MB, over the profile's limit of {limits.max_file_bytes / 1e6:.1f} MB (limits.max_file_bytes)",
            code="input.too_large",
        )
    try:
        with path.open("rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})", code="input.unreadable") from None
    if len(data) > limits.max_file_bytes:  # grew while we looked
        raise InputError(path, "grew past the profile's file size limit while being read", code="input.too_large")
    return SourceFile(name=path.name, data=data, path=path)
