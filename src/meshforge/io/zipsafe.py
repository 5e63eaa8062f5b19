"""Reading ZIP packages (3MF) without trusting them: no extraction, bounded inflation, no escaping names.

Nothing is ever written to disk, so "zip-slip" means a part name or relationship target that climbs
out of the package (``../../etc/passwd``, ``/abs``, ``C:\\``): such names are never read and are
reported. Each part is inflated through a capped stream, so a zip bomb whose headers lie about its
size still stops at the cap; the package as a whole shares one budget.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from meshforge.errors import InputError
from meshforge.io.guard import escapes, where
from meshforge.types import ReadLimits, SourceFile

MAX_ENTRIES = 10_000
MAX_RATIO = 1_000  # DEFLATE tops out near 1032:1; anything above is a crafted bomb
CHUNK = 1 << 20


@dataclass
class SafeZip:
    source: SourceFile
    limits: ReadLimits
    archive: zipfile.ZipFile
    budget: int
    unsafe: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, source: SourceFile, limits: ReadLimits) -> SafeZip:
        try:
            archive = zipfile.ZipFile(io.BytesIO(source.data))
            infos = archive.infolist()
        except Exception as exc:  # BadZipFile, NotImplementedError (unknown zip version), struct.error, ...
            raise InputError(where(source), f"is not a readable ZIP package ({type(exc).__name__}: {exc})",
                             code="input.corrupt") from None
        if len(infos) > MAX_ENTRIES:
            raise InputError(where(source), f"ZIP package has {len(infos):,} entries (limit {MAX_ENTRIES:,})",
                             code="input.too_large")
        unsafe = [i.filename for i in infos if escapes(i.filename)]
        return cls(source=source, limits=limits, archive=archive, budget=limits.max_file_bytes, unsafe=unsafe)

    def names(self) -> dict[str, str]:
        """Safe part names, keyed case-insensitively (OPC part names are case-insensitive)."""
        return {i.filename.lower(): i.filename for i in self.archive.infolist()
                if not escapes(i.filename) and not i.is_dir()}

    def read(self, name: str, *, missing_ok: bool = False) -> bytes | None:
        """One part's bytes, inflated through the cap. ``name`` is a part name, with or without '/'."""
        part = name.lstrip("/")
        if escapes(part):
            if name not in self.unsafe:
                self.unsafe.append(name)
            if missing_ok:
                return None
            raise InputError(where(self.source), f"package part {name!r} points outside the package (not read)",
                             code="input.unsafe_path")
        real = self.names().get(part.lower())
        if real is None:
            if missing_ok:
                return None
            raise InputError(where(self.source), f"package has no part {name!r}", code="input.corrupt")
        info = self.archive.getinfo(real)
        if info.file_size > self.budget:
            raise InputError(where(self.source), f"package part {real!r} inflates to {info.file_size:,} bytes, over the "
                             f"profile's limit (limits.max_file_bytes)", code="input.too_large")
        if info.compress_size and info.file_size > CHUNK and info.file_size / info.compress_size > MAX_RATIO:
            raise InputError(where(self.source), f"package part {real!r} has a compression ratio of "
                             f"{info.file_size / info.compress_size:,.0f}:1 (a zip bomb)", code="input.zip_bomb")
        out = bytearray()
        try:
            with self.archive.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    out += chunk
                    if len(out) > self.budget or len(out) > info.file_size:
                        raise InputError(where(self.source), f"package part {real!r} inflates past its declared size "
                                         f"or the profile's limit (a zip bomb)", code="input.zip_bomb")
        except InputError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
            raise InputError(where(self.source), f"package part {real!r} is corrupt ({exc})", code="input.corrupt") from None
        except Exception as exc:  # zlib.error and friends
            raise InputError(where(self.source), f"package part {real!r} is corrupt ({type(exc).__name__}: {exc})",
                             code="input.corrupt") from None
        self.budget -= len(out)
        return bytes(out)
