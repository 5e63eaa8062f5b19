"""Plugin loading and the step registry.

Each Engine builds its own ``PluginManager`` here: built-in plugins first (ordinary modules named in
:data:`BUILTIN_PLUGINS`), then entry points of the group ``meshforge`` (each in its own try/except:
a broken distribution becomes a ``failed`` row, never a crash), then plugin objects the embedding
program passes. The registry collects every plugin's steps, attributed to the plugin that declared
them, with their availability (an optional dependency or system library missing makes one step
unavailable, with the reason, and breaks nothing else).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import pluggy

from meshforge import hookspecs
from meshforge.errors import ProfileError, closest_first
from meshforge.types import STAGES, STEP_TYPES, AnyStep, Reader, Stage

# Built-ins are plugins like anyone's, named here and loaded by import (pytest's pattern).
BUILTIN_PLUGINS: tuple[str, ...] = (
    "meshforge.builtin.formats",
    "meshforge.builtin.generate.load",
    "meshforge.builtin.generate.relief",
    "meshforge.builtin.preprocess.images",
    "meshforge.builtin.preprocess.prompts",
    "meshforge.builtin.validate.core",
    "meshforge.builtin.validate.gltf",
    "meshforge.builtin.validate.commerce",
    "meshforge.builtin.validate.content",
    "meshforge.builtin.validate.printing",
    "meshforge.builtin.repair.cleanup",
    "meshforge.builtin.repair.solid",
    "meshforge.builtin.repair.placement",
    "meshforge.builtin.repair.commerce",
    "meshforge.builtin.repair.decimate",
    "meshforge.builtin.export.writers",
    "meshforge.builtin.export.gltf",
    "meshforge.builtin.export.usdz",
    "meshforge.builtin.export.visual",
)

ENTRY_POINT_GROUP = "meshforge"
Origin = Literal["builtin", "entry-point", "runtime"]
Status = Literal["active", "blocked", "failed"]  # "unavailable" is derived: see PluginRecord.usable_status

_STAGE_HOOKS: Mapping[Stage, str] = MappingProxyType({stage: f"meshforge_{stage.value}_steps" for stage in STAGES})


@dataclass(frozen=True, kw_only=True)
class StepEntry:
    """One step as the registry knows it: who declared it and whether it can run here."""

    stage: Stage
    spec: AnyStep
    plugin: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def qualified(self) -> str:
        return f"{self.plugin}:{self.spec.name}"

    @property
    def unavailable_reason(self) -> str | None:
        return missing_requirement(self.spec.requires)


@dataclass(frozen=True, kw_only=True)
class PluginRecord:
    name: str
    origin: Origin
    status: Status
    distribution: str | None = None
    version: str | None = None
    reason: str | None = None
    steps: Mapping[Stage, tuple[StepEntry, ...]] = field(default_factory=dict)

    @property
    def usable_status(self) -> tuple[str, str | None]:
        """(status, reason) as users should read it: an active plugin none of whose steps can
        run here (a missing optional dependency or system library) is ``unavailable``."""
        entries = [e for group in self.steps.values() for e in group]
        if self.status == "active" and entries:
            reasons = [e.unavailable_reason for e in entries]
            if all(reasons):
                return "unavailable", reasons[0]
        return self.status, self.reason

    def to_dict(self) -> dict[str, Any]:
        status, reason = self.usable_status
        return {
            "name": self.name,
            "origin": self.origin,
            "status": status,
            "distribution": self.distribution,
            "version": self.version,
            "reason": reason,
            "steps": {
                stage.value: [
                    {
                        "name": e.name,
                        "summary": e.spec.summary,
                        "available": e.unavailable_reason is None,
                        "reason": e.unavailable_reason,
                    }
                    for e in entries
                ]
                for stage, entries in self.steps.items()
                if entries
            },
        }


@functools.cache
def _import_problem(module: str) -> str | None:
    # Cached per process: an import either works here or it doesn't, and importing open3d twice costs.
    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, OSError for a missing system library, anything a binding raises
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{module} cannot be imported ({detail})"
    return None


def missing_requirement(requires: Iterable[str]) -> str | None:
    for module in requires:
        problem = _import_problem(module)
        if problem:
            return problem
    return None


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


class Registry:
    """Every loaded plugin and the steps and readers it offers. Immutable once built."""

    def __init__(self, pm: pluggy.PluginManager, records: list[PluginRecord]) -> None:
        self.pm = pm
        by_plugin: dict[str, dict[Stage, list[StepEntry]]] = {}
        problems: dict[str, str] = {}
        for stage, hook_name in _STAGE_HOOKS.items():
            hook = getattr(pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                # Called one by one (not through the hook) so every step is attributed to its plugin.
                try:
                    declared = list(impl.function() or ())
                    for spec in declared:
                        if not isinstance(spec, STEP_TYPES[stage]):
                            raise TypeError(f"{hook_name} returned {type(spec).__name__}, expected {STEP_TYPES[stage].__name__}")
                except Exception as exc:
                    problems[impl.plugin_name] = f"{hook_name} failed: {type(exc).__name__}: {exc}"
                    continue
                by_plugin.setdefault(impl.plugin_name, {}).setdefault(stage, []).extend(
                    StepEntry(stage=stage, spec=spec, plugin=impl.plugin_name) for spec in declared
                )
        final: list[PluginRecord] = []
        for rec in records:
            steps = {s: tuple(v) for s, v in by_plugin.get(rec.name, {}).items()}
            if rec.name in problems:
                final.append(_replace(rec, status="failed", reason=problems[rec.name], steps={}))
            else:
                final.append(_replace(rec, steps=steps))
        self.records: tuple[PluginRecord, ...] = tuple(final)
        self._steps: dict[Stage, dict[str, list[StepEntry]]] = {s: {} for s in STAGES}
        for rec in self.records:
            if rec.status != "active":
                continue
            for stage, entries in rec.steps.items():
                for entry in entries:
                    self._steps[stage].setdefault(entry.name, []).append(entry)

    def names(self, stage: Stage) -> list[str]:
        return sorted(self._steps[stage])

    def entries(self, stage: Stage) -> list[StepEntry]:
        return [e for name in self.names(stage) for e in self._steps[stage][name]]

    def lookup(self, stage: Stage, ref: str, where: str) -> StepEntry:
        """Find one step by ``name`` or ``plugin:name``; ambiguity and typos are ProfileErrors."""
        plugin, _, name = ref.rpartition(":")
        candidates = self._steps[stage].get(name, [])
        if plugin:
            candidates = [c for c in candidates if c.plugin == plugin]
        if not candidates:
            raise ProfileError(where, f"no {stage.value} step {ref!r}", closest_first(name, self.names(stage)))
        if len(candidates) > 1 and not plugin:
            # An unqualified name means the built-in step: a plugin offering a step of the same name
            # must not break every packaged profile; "plugin:name" picks the plugin's.
            ours = {r.name for r in self.records if r.origin == "builtin"}  # by origin: a name proves nothing
            builtin = [c for c in candidates if c.plugin in ours]
            candidates = builtin if len(builtin) == 1 else candidates
        if len(candidates) > 1:
            raise ProfileError(
                where,
                f"{len(candidates)} plugins offer the {stage.value} step {name!r}; name one",
                [c.qualified for c in candidates],
            )
        return candidates[0]

    def readers(self) -> dict[str, Reader]:
        out: dict[str, Reader] = {}
        # LIFO: later-registered plugins are asked first, so a third-party reader overrides a built-in.
        for impl in reversed(self.pm.hook.meshforge_readers.get_hookimpls()):
            try:
                for reader in impl.function() or ():
                    out[reader.format] = reader
            except Exception:  # a broken reader hook must not take the others down
                continue
        return out


def _replace(rec: PluginRecord, **changes: Any) -> PluginRecord:
    from dataclasses import replace

    return replace(rec, **changes)


def load_plugins(
    *,
    plugins: Iterable[object] = (),
    entry_points: bool = True,
    blocked: Iterable[str] = (),
) -> Registry:
    """Build a fresh plugin manager and registry (nothing global, nothing at import time)."""
    pm = new_plugin_manager()
    blocked = set(blocked) | {b for b in os.environ.get("MESHFORGE_BLOCK", "").split(",") if b}
    for name in blocked:
        pm.set_blocked(name)
    records: list[PluginRecord] = []
    from meshforge import __version__

    for module_name in BUILTIN_PLUGINS:
        records.append(_register_module(pm, module_name, origin="builtin", version=__version__, blocked=blocked))
    if entry_points and os.environ.get("MESHFORGE_DISABLE_PLUGIN_AUTOLOAD", "") not in ("1", "true", "yes"):
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist, version = _distribution_of(ep)
            if ep.name in blocked:
                records.append(PluginRecord(name=ep.name, origin="entry-point", status="blocked", distribution=dist, version=version))
                continue
            try:
                obj = ep.load()
                pm.register(obj, name=ep.name)
                pm.check_pending()
            except (Exception, SystemExit) as exc:  # a module calling sys.exit() at import must not end every command
                _unregister_quietly(pm, ep.name)
                records.append(
                    PluginRecord(
                        name=ep.name,
                        origin="entry-point",
                        status="failed",
                        distribution=dist,
                        version=version,
                        reason=f"{type(exc).__name__}: {exc}",
                    )
                )
                continue
            records.append(PluginRecord(name=ep.name, origin="entry-point", status="active", distribution=dist, version=version))
    for obj in plugins:
        name = getattr(obj, "__name__", None) or f"{type(obj).__name__}-{id(obj):x}"
        try:
            pm.register(obj, name=name)
            pm.check_pending()
        except Exception as exc:
            _unregister_quietly(pm, name)
            records.append(PluginRecord(name=name, origin="runtime", status="failed", reason=f"{type(exc).__name__}: {exc}"))
            continue
        records.append(PluginRecord(name=name, origin="runtime", status="active", version=getattr(obj, "__version__", None)))
    return Registry(pm, records)


def _register_module(pm: pluggy.PluginManager, module_name: str, *, origin: Origin, version: str, blocked: set[str]) -> PluginRecord:
    if module_name in blocked or builtin_name(module_name) in blocked:
        return PluginRecord(name=builtin_name(module_name), origin=origin, status="blocked", version=version)
    name = builtin_name(module_name)
    try:
        module = importlib.import_module(module_name)
        pm.register(module, name=name)
        pm.check_pending()
    except Exception as exc:
        _unregister_quietly(pm, name)
        return PluginRecord(name=name, origin=origin, status="failed", version=version, reason=f"{type(exc).__name__}: {exc}")
    return PluginRecord(name=name, origin=origin, status="active", version=version)


def builtin_name(module_name: str) -> str:
    """``meshforge.builtin.validate.printing`` -> ``builtin.validate.printing`` (shorter in listings)."""
    return module_name.removeprefix("meshforge.")


def _unregister_quietly(pm: pluggy.PluginManager, name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
