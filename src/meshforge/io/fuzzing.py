"""Byte-level mutations of valid model files, shared by tests/test_fuzz.py and bench/fuzz.py."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from meshforge.errors import InputError
from meshforge.types import ReadLimits, SourceFile

# Small limits keep a mutated count from asking for gigabytes even when it is "honest".
FUZZ_LIMITS = ReadLimits(max_file_bytes=8 * 1024 * 1024, max_triangles=200_000, max_vertices=300_000,
                         max_image_pixels=4 * 1024 * 1024, max_nodes=2_000, max_primitives=2_000, max_depth=32)


def mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    """Apply (kind, position, value) edits: 0 flip a byte, 1 truncate, 2 insert, 3 delete, 4 write a big int."""
    buf = bytearray(data)
    for kind, pos, value in ops:
        if not buf:
            break
        at = pos % len(buf)
        if kind == 0:
            buf[at] = value & 0xFF
        elif kind == 1:
            del buf[at:]
        elif kind == 2:
            buf[at:at] = bytes([value & 0xFF]) * (1 + value % 7)
        elif kind == 3:
            del buf[at:at + 1 + value % 16]
        else:
            buf[at:at + 4] = (value * 2654435761 & 0xFFFFFFFF).to_bytes(4, "little")
    return bytes(buf)


def read_mutant(name: str, data: bytes) -> str:
    """Read mutated bytes; returns "ok" or the InputError code. Anything else propagates (a bug)."""
    from meshforge.io.readers import read

    try:
        read(SourceFile(name=name, data=data), FUZZ_LIMITS)
    except InputError as exc:
        return exc.code
    return "ok"


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    """Raise TimeoutError if the block runs longer than ``seconds`` (main thread, POSIX)."""

    def fire(signum: int, frame: object) -> None:
        raise TimeoutError(f"no answer within {seconds} s (a hang)")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
