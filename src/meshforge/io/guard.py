"""Shared guards for the readers: limits checked before allocating, findings, folder-bound resolving.

Hostile input is normal input. Every reader counts what a file *claims* (triangles, vertices,
entries) and compares it with the profile's :class:`~meshforge.types.ReadLimits` and with the bytes
actually present before a single array is allocated. Files a model references (an OBJ's ``.mtl``
and textures, a glTF's buffers) are read only from the model's own folder, through
:class:`FolderResolver`, which records every refusal so the reader can report it as a finding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from meshforge.errors import InputError
from meshforge.types import Finding, ReadLimits, Severity, SourceFile

STEP = "input"  # findings raised while reading carry this step id (as the engine's InputError finding does)
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".tga"})


def where(source: SourceFile) -> object:
    return source.path or source.name


def finding(code: str, severity: Severity | str, message: str, *, measured: Any = None, threshold: Any = None,
            count: int | None = None) -> Finding:
    return Finding(code=code, severity=Severity(severity), message=message, measured=measured, threshold=threshold,
                   count=count, step=STEP)


def check_counts(source: SourceFile, limits: ReadLimits, *, triangles: int = 0, vertices: int = 0, fmt: str) -> None:
    """Refuse a claimed size over the profile's caps (called before anything is allocated)."""
    if triangles > limits.max_triangles:
        raise InputError(where(source), f"{fmt} file declares {triangles:,} triangles, over the profile's limit of "
                         f"{limits.max_triangles:,} (limits.max_triangles)", code="input.too_large")
    if vertices > limits.max_vertices:
        raise InputError(where(source), f"{fmt} file declares {vertices:,} vertices, over the profile's limit of "
                         f"{limits.max_vertices:,} (limits.max_vertices)", code="input.too_large")


def empty(source: SourceFile, fmt: str, detail: str = "") -> InputError:
    return InputError(where(source), f"{fmt} file holds no triangles{f' ({detail})' if detail else ''}", code="input.empty")


def escapes(name: str) -> bool:
    """True when a referenced name is absolute, has a drive, a URL scheme or climbs out with '..'."""
    if not name or "\x00" in name:
        return True
    if "://" in name or name.startswith(("\\\\", "//")):
        return True
    win = PureWindowsPath(name)
    if win.drive or win.root:
        return True
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute():
        return True
    depth = 0
    for part in posix.parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in (".", ""):
            depth += 1
    return False


@dataclass
class FolderResolver:
    """A trimesh resolver that serves files from one folder only, within a byte budget.

    Names that escape the folder (``../canary.mtl``, ``/etc/passwd``, ``C:\\x``, symlinks pointing
    out) are never opened; they and missing files are recorded in ``refused`` / ``missing``.
    Images whose header declares more pixels than the profile allows are refused before decoding.
    """

    folder: Path | None
    limits: ReadLimits
    refused: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    too_large: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    budget: int = -1

    def __post_init__(self) -> None:
        if self.budget < 0:
            self.budget = self.limits.max_file_bytes

    # the trimesh Resolver protocol ------------------------------------------------------------
    def get(self, name: str) -> bytes:
        name = str(name).strip().strip('"')
        if escapes(name):
            self.refused.append(name)
            raise OSError(f"{name!r} is outside the model's folder (not read)")
        if self.folder is None:
            self.missing.append(name)
            raise OSError(f"{name!r}: no folder to resolve it in (model given as bytes)")
        base = self.folder.resolve()
        target = (base / name.replace("\\", "/")).resolve()
        if not target.is_relative_to(base):  # a symlink that points out of the folder
            self.refused.append(name)
            raise OSError(f"{name!r} resolves outside the model's folder (not read)")
        try:
            size = target.stat().st_size
            if not target.is_file():
                raise FileNotFoundError(name)
        except OSError:
            self.missing.append(name)
            raise OSError(f"{name!r} not found beside the model") from None
        if size > self.budget:
            self.too_large.append(name)
            raise OSError(f"{name!r} is over the remaining file size budget")
        with target.open("rb") as fh:
            data = fh.read(self.budget + 1)
        if len(data) > self.budget:
            self.too_large.append(name)
            raise OSError(f"{name!r} grew past the file size budget")
        if target.suffix.lower() in IMAGE_SUFFIXES and not self._image_ok(data, name):
            self.too_large.append(name)
            raise OSError(f"{name!r} declares more pixels than the profile allows")
        self.budget -= len(data)
        self.served.append(name)
        return data

    def _image_ok(self, data: bytes, name: str) -> bool:
        try:
            from meshforge.io.images import image_info

            info = image_info(data, name)
        except InputError:
            return True  # not decodable: the material simply gets no texture; the check is about bombs
        except Exception:
            return True
        return info.width * info.height <= self.limits.max_image_pixels

    def __getitem__(self, name: str) -> bytes:
        return self.get(name)

    def __contains__(self, name: str) -> bool:
        return False

    def keys(self) -> list[str]:
        return []

    def write(self, name: str, data: Any) -> None:
        raise OSError("meshforge readers never write")

    def namespaced(self, namespace: str) -> FolderResolver:
        if escapes(namespace) or self.folder is None:
            return FolderResolver(None, self.limits, self.refused, self.missing, self.too_large, self.served, self.budget)
        return FolderResolver(self.folder / namespace, self.limits, self.refused, self.missing, self.too_large,
                              self.served, self.budget)

    def findings(self, what: str, *, missing_code: str = "input.missing_resource") -> list[Finding]:
        """Findings for what was refused or missing while reading (``what``: "material library", "file")."""
        out = []
        if self.refused:
            out.append(finding("input.unsafe_path", Severity.ERROR,
                               f"{len(self.refused)} referenced path(s) point outside the model's folder and were not "
                               f"read: {', '.join(repr(n) for n in self.refused[:5])}",
                               measured=self.refused[:10], count=len(self.refused)))
        if self.missing:
            out.append(finding(missing_code, Severity.WARNING,
                               f"{len(self.missing)} referenced {what}(s) not found beside the model: "
                               f"{', '.join(repr(n) for n in self.missing[:5])}",
                               measured=self.missing[:10], count=len(self.missing)))
        if self.too_large:
            out.append(finding("input.resource_too_large", Severity.ERROR,
                               f"{len(self.too_large)} referenced file(s) refused as over the profile's limits "
                               f"(file bytes or image pixels): {', '.join(repr(n) for n in self.too_large[:5])}",
                               measured=self.too_large[:10], count=len(self.too_large)))
        return out
