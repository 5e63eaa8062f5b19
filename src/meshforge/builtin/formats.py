"""Built-in readers and the magic-byte format sniffer."""

from __future__ import annotations

from meshforge.hookspecs import hookimpl
from meshforge.io import readers, sniff
from meshforge.types import Reader


@hookimpl(trylast=True)
def meshforge_detect_format(head: bytes, filename: str | None) -> str | None:
    return sniff.detect(head, filename)


@hookimpl
def meshforge_readers() -> list[Reader]:
    return readers.all_readers()
