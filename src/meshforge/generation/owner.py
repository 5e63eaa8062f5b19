"""Which process owns a submission, and whether it is known to have ended.

A job record in state ``prepared`` belongs to the run that is submitting it. When that run was
stopped while it only waited (a 429's ``Retry-After``, the pacing) nothing reached the provider, and
a later run may submit: but only if the owner is *known* dead. Paying twice is the worst mistake
this package can make, so every doubt reads as "alive": another machine (a shared store), another
boot, another pid namespace (containers sharing a hostname are each pid 1), a platform without
``/proc``. On this machine, in this namespace, the owner is dead when its pid is gone or now names a
process that started at another time (the pid was reused).
"""

from __future__ import annotations

import os
import socket
from typing import Any


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:  # bytes: a command name may be any bytes (/proc/<pid>/stat)
            return fh.read().decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks after boot) of ``pid`` from ``/proc/<pid>/stat``, or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    try:
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces and ")"
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _start_time(pid: int) -> int | None:
    stat = _stat(pid)
    return None if stat is None else stat[1]


_HOST = socket.gethostname()
_BOOT = _read("/proc/sys/kernel/random/boot_id")


def current_owner() -> dict[str, Any]:
    """This process, as a record names its owner (taken when written: a forked child is itself)."""
    pid = os.getpid()
    return {"host": _HOST, "boot": _BOOT, "pidns": _pid_namespace(), "pid": pid, "start": _start_time(pid)}


def owner_gone(record: dict[str, Any]) -> bool:
    """True when the process that owns ``record``'s submission is known to have ended.

    The caller holds this key's in-process lock, so a record this very process wrote belongs to a
    run that is over.
    """
    owner = record.get("owner")
    if not isinstance(owner, dict) or not isinstance(owner.get("pid"), int):
        return False
    me = current_owner()
    if not me["boot"] or not me["pidns"] or any(owner.get(k) != me[k] for k in ("host", "boot", "pidns")):
        return False  # another machine, boot or namespace: its processes cannot be seen from here
    pid = owner["pid"]
    if pid == me["pid"]:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # it exists (another user's), or the record is corrupt: alive
        if not 0 < pid < 2**31:
            return False
    stat = _stat(pid)
    if stat is None:
        return False
    state, start = stat
    if state in ("Z", "X"):
        return True  # killed, not yet reaped by its parent: it will never send anything
    return owner.get("start") is not None and start != owner["start"]


def idle_and_gone(record: dict[str, Any] | None) -> bool:
    """A ``prepared`` record whose owner ended while no submit request was in flight: nothing was sent."""
    return (record is not None and record.get("state") == "prepared" and record.get("in_flight") is False
            and owner_gone(record))


__all__ = ["current_owner", "idle_and_gone", "owner_gone"]
