"""Profiles: TOML files that pick the chain of steps and their parameters.

Lookup order for a name: a path (``./mine.toml``) -> each folder of ``MESHFORGE_PROFILE_PATH`` ->
the profiles packaged with meshforge. A profile may ``extends`` another (by name or by a path
relative to itself): tables deep-merge with the child winning per key; ``[chain]`` lists replace
per stage (no list merging, so what you read is what runs). ``--set step.param=value`` overrides
after that. Everything is checked before any file is touched.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from meshforge import params as params_mod
from meshforge.errors import ProfileError, closest_first
from meshforge.plugins import Registry, StepEntry
from meshforge.types import STAGES, AnyStep, ReadLimits, Stage

RESERVED_STEP_KEYS = ("uses", "always", "timeout_s")
TOP_LEVEL_KEYS = ("schema", "name", "aliases", "extends", "summary", "chain", "steps", "run", "limits")


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    revalidate_after_repair: bool = params_mod.field(True, "validate again after repairs; exit 1 only if errors remain")
    regenerate_attempts: int = params_mod.field(0, "extra generation attempts when errors stay after repair")
    regenerate_on: tuple[str, ...] = params_mod.field((), "finding codes that justify regenerating (empty: any error)")
    assume_units: str = params_mod.field("", "length unit assumed for unitless formats (STL/OBJ/PLY/OFF): mm, m, in...")
    export_rejected: bool = params_mod.field(True, "write assets that still fail to <out>/rejected/ with their report")
    step_timeout_s: float = params_mod.field(0.0, "default per-step time limit in seconds (0: none)")
    html: bool = params_mod.field(False, "after `meshforge run`, write an HTML page per asset and a gallery (as --html)")


@dataclass(frozen=True, kw_only=True)
class ResolvedStep:
    id: str  # the chain's name for it ("thickness")
    stage: Stage
    spec: AnyStep
    plugin: str
    params: Any
    always: bool = False
    timeout_s: float = 0.0
    fallback_from: tuple[str, ...] = ()  # preferred candidates that were unavailable here, with reasons

    @property
    def name(self) -> str:
        return self.spec.name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "stage": self.stage.value,
            "uses": self.spec.name,
            "plugin": self.plugin,
            "params": params_mod.as_plain(self.params),
        }
        if self.always:
            out["always"] = True
        if self.timeout_s:
            out["timeout_s"] = self.timeout_s
        if self.fallback_from:
            out["fallback_from"] = list(self.fallback_from)
        return out


@dataclass(frozen=True, kw_only=True)
class ResolvedProfile:
    name: str
    summary: str
    sources: tuple[str, ...]
    chain: tuple[ResolvedStep, ...]
    run: RunSettings = field(default_factory=RunSettings)
    limits: ReadLimits = field(default_factory=ReadLimits)
    overrides: Mapping[str, Any] = field(default_factory=dict)

    def stage(self, stage: Stage) -> tuple[ResolvedStep, ...]:
        return tuple(s for s in self.chain if s.stage is stage)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "sources": list(self.sources),
            "chain": {stage.value: [s.to_dict() for s in self.stage(stage)] for stage in STAGES},
            "run": params_mod.as_plain(self.run),
            "limits": params_mod.as_plain(self.limits),
            "overrides": dict(self.overrides),
        }


# --- finding profile files -------------------------------------------------------------------


def search_path() -> list[Path]:
    env = os.environ.get("MESHFORGE_PROFILE_PATH", "")
    return [Path(p) for p in env.split(os.pathsep) if p]


def _packaged() -> list[tuple[str, str, Any]]:
    """(file name, display source, resource) for profiles shipped in the wheel."""
    root = resources.files("meshforge.bundled_profiles")
    return [(r.name, f"meshforge:profiles/{r.name}", r) for r in root.iterdir() if r.name.endswith(".toml")]


def _candidates() -> Iterable[tuple[str, str, Any]]:
    for folder in search_path():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                yield path.name, str(path), path
    yield from sorted(_packaged(), key=lambda c: c[0])


def _parse(text: str, source: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(source, f"not valid TOML ({exc})") from None
    unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise ProfileError(source, f"unknown top-level key {unknown[0]!r}", TOP_LEVEL_KEYS)
    return data


def _read(resource: Any, source: str) -> dict[str, Any]:
    try:
        text = resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(source, f"cannot read profile ({exc})") from None
    return _parse(text, source)


def _names_of(data: Mapping[str, Any], file_name: str) -> set[str]:
    names = {str(data.get("name") or file_name.removesuffix(".toml"))}
    names.update(str(a) for a in data.get("aliases", ()))
    return names


def available_profiles() -> list[dict[str, Any]]:
    """Every profile on the search path: name, aliases, summary, source (first one wins per name)."""
    seen: set[str] = set()
    out = []
    for file_name, source, resource in _candidates():
        try:
            data = _read(resource, source)
        except ProfileError as exc:
            out.append({"name": file_name.removesuffix(".toml"), "aliases": [], "summary": f"(broken: {exc.reason})", "source": source})
            continue
        name = str(data.get("name") or file_name.removesuffix(".toml"))
        if name in seen:
            continue
        seen.add(name)
        out.append({"name": name, "aliases": list(data.get("aliases", ())), "summary": data.get("summary", ""), "source": source})
    return out


def find(ref: str, relative_to: Path | None = None) -> tuple[dict[str, Any], str, Path | None]:
    """Load the profile ``ref`` names; returns (data, source, folder for relative extends)."""
    looks_like_path = ref.endswith(".toml") or os.sep in ref or "/" in ref
    if looks_like_path:
        path = Path(ref)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise ProfileError(ref, "no such profile file")
        return _read(path, str(path)), str(path), path.parent
    names: list[str] = []
    unreadable: list[ProfileError] = []
    for file_name, source, resource in _candidates():
        try:
            data = _read(resource, source)
        except ProfileError as exc:  # one broken file on the search path must not hide every other profile
            unreadable.append(exc)
            continue
        aliases = _names_of(data, file_name)
        if ref in aliases:
            return data, source, resource.parent if isinstance(resource, Path) else None
        names.append(str(data.get("name") or file_name.removesuffix(".toml")))
    reason = "unknown profile"
    if unreadable:
        reason += f" (it may be one of the profiles that could not be read: {'; '.join(str(e) for e in unreadable[:3])})"
    raise ProfileError(ref, reason, closest_first(ref, names))


def merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in child.items():
        if key == "chain" and isinstance(value, Mapping):
            out["chain"] = {**dict(base.get("chain", {})), **dict(value)}  # per stage: child's list replaces
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping) and not _switches_implementation(out[key], value):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _switches_implementation(base: Mapping[str, Any], child: Mapping[str, Any]) -> bool:
    """A step table whose ``uses`` names another implementation starts afresh: parameters belong to
    the implementation (Meshy's ``should_texture`` means nothing to Tripo's step)."""
    return "uses" in child and "uses" in base and child["uses"] != base["uses"]


def load_raw(ref: str | os.PathLike[str] | Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...], set[str]]:
    """The profile with its ``extends`` chain merged in.

    Returns (data, sources from base to child, the step tables the child itself configures).
    """
    if isinstance(ref, Mapping):
        data, source, folder = copy.deepcopy(dict(ref)), "<dict>", None
        unknown = [k for k in data if k not in TOP_LEVEL_KEYS]
        if unknown:
            raise ProfileError(source, f"unknown top-level key {unknown[0]!r}", TOP_LEVEL_KEYS)
    else:
        data, source, folder = find(os.fspath(ref))
    own_steps = set(data.get("steps", {}))
    chain_of_sources = [source]
    seen = {source}
    layers = [data]  # child first
    while "extends" in layers[-1]:
        parent_ref = str(layers[-1].pop("extends"))
        parent, parent_source, parent_folder = find(parent_ref, relative_to=folder)
        if parent_source in seen:
            raise ProfileError(parent_source, "profiles extend each other in a cycle", sorted(seen))
        seen.add(parent_source)
        chain_of_sources.append(parent_source)
        layers.append(parent)
        folder = parent_folder
    # Folded from the base down, so each layer's parameters meet the implementation in effect at
    # that layer: a middle profile's should_texture for Meshy is dropped when the child switches
    # the step to Tripo (folded child-first, it survived the switch).
    data = layers[-1]
    for layer in reversed(layers[:-1]):
        # name and aliases belong to the file that states them; they are not inherited
        own = {k: layer[k] for k in ("name", "aliases") if k in layer}
        data = {k: v for k, v in merge(data, layer).items() if k not in ("name", "aliases")} | own
    return data, tuple(reversed(chain_of_sources)), own_steps


def parse_override(text: str) -> tuple[str, str, Any]:
    """``thickness.min_mm=1.0`` -> ("thickness", "min_mm", 1.0); right side parsed as a TOML value."""
    key, sep, raw = text.partition("=")
    if not sep or "." not in key:
        raise ProfileError(f"--set {text}", "expected STEP.PARAM=VALUE (or run.KEY=VALUE, limits.KEY=VALUE)")
    target, _, param = key.strip().rpartition(".")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return target, param.strip(), value


def resolve(
    ref: str | os.PathLike[str] | Mapping[str, Any],
    registry: Registry,
    overrides: Iterable[str] | Mapping[str, Any] = (),
    append: Mapping[str, Iterable[str]] | None = None,
) -> ResolvedProfile:
    """Resolve ``ref`` against the registry. ``append`` adds step ids to a stage's chain when the
    profile does not already run them (``--thumbnails`` appends the ``thumbnails`` export)."""
    data, sources, own_step_tables = load_raw(ref)
    name = str(data.get("name") or (Path(sources[-1]).stem if sources[-1] != "<dict>" else "custom"))
    _check_shape(data, name)
    for stage_name, step_ids in (append or {}).items():
        stage_list = list(data.setdefault("chain", {}).get(stage_name, []))
        data["chain"][stage_name] = stage_list + [s for s in step_ids if s not in stage_list]
    if isinstance(overrides, Mapping):
        items = [(*k.rpartition(".")[::2], v) for k, v in overrides.items()]
    elif isinstance(overrides, str):
        raise ProfileError(f"--set {overrides}", "overrides are a list of STEP.PARAM=VALUE strings (or a mapping), not one string")
    else:
        items = [parse_override(o) for o in overrides]
    applied: dict[str, Any] = {}
    for target, param, value in items:  # --set STEP.uses=OTHER switches the implementation, as extending would
        table = data.get("steps", {}).get(target)
        if param == "uses" and isinstance(table, Mapping) and _switches_implementation(table, {"uses": value}):
            data["steps"][target] = {}
    for target, param, value in items:
        if target in ("run", "limits"):
            data.setdefault(target, {})[param] = value
        else:
            data.setdefault("steps", {}).setdefault(target, {})[param] = value
            own_step_tables.add(target)
        applied[f"{target}.{param}"] = value

    chain_table = data.get("chain", {})
    for stage_name in chain_table:
        if stage_name not in {s.value for s in STAGES}:
            raise ProfileError(f"{name}: chain.{stage_name}", "unknown stage", [s.value for s in STAGES])
    step_tables: Mapping[str, Any] = data.get("steps", {})
    chain: list[ResolvedStep] = []
    ids: set[str] = set()
    for stage in STAGES:
        for step_id in chain_table.get(stage.value, []):
            if step_id in ids:
                raise ProfileError(f"{name}: chain.{stage.value}", f"step id {step_id!r} appears twice")
            ids.add(step_id)
            chain.append(_resolve_step(name, stage, str(step_id), dict(step_tables.get(step_id, {})), registry))
    stray = sorted(t for t in own_step_tables if t not in ids)
    if stray:
        raise ProfileError(f"{name}: steps.{stray[0]}", "configures a step that is not in the chain", sorted(ids))
    run = params_mod.build(RunSettings, data.get("run", {}), f"{name}: run")
    limits = params_mod.build(ReadLimits, data.get("limits", {}), f"{name}: limits")
    default_timeout = run.step_timeout_s
    chain = [s if s.timeout_s or not default_timeout else _with_timeout(s, default_timeout) for s in chain]
    return ResolvedProfile(
        name=name,
        summary=str(data.get("summary", "")),
        sources=sources,
        chain=tuple(chain),
        run=run,
        limits=limits,
        overrides=applied,
    )


def _check_shape(data: Mapping[str, Any], name: str) -> None:
    """The tables a profile is made of have the types the resolver reads them as: a typo'd shape
    (``[steps] closed = "print.closed"``, ``validate = "closed"``) is named, not a traceback."""
    chain = data.get("chain", {})
    if not isinstance(chain, Mapping):
        raise ProfileError(f"{name}: chain", "must be a table of stage = [step, ...]")
    for stage_name, ids in chain.items():
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise ProfileError(f"{name}: chain.{stage_name}", f'must be a list of step ids, e.g. {stage_name} = ["a", "b"], not {ids!r}')
    steps = data.get("steps", {})
    if not isinstance(steps, Mapping):
        raise ProfileError(f"{name}: steps", "must be a table of [steps.ID] tables")
    for step_id, table in steps.items():
        if not isinstance(table, Mapping):
            raise ProfileError(f"{name}: steps.{step_id}", f"must be a table of parameters ([steps.{step_id}] uses = ...), not {table!r}")
    for key in ("run", "limits"):
        if not isinstance(data.get(key, {}), Mapping):
            raise ProfileError(f"{name}: {key}", f"must be a table ([{key}]), not {data[key]!r}")


def _with_timeout(step: ResolvedStep, seconds: float) -> ResolvedStep:
    from dataclasses import replace

    return replace(step, timeout_s=seconds)


def _resolve_step(profile: str, stage: Stage, step_id: str, table: dict[str, Any], registry: Registry) -> ResolvedStep:
    where = f"{profile}: steps.{step_id}"
    uses = table.pop("uses", step_id)
    always = table.pop("always", False)
    timeout_s = table.pop("timeout_s", 0.0)
    if not isinstance(always, bool):
        raise ProfileError(f"{where}.always", f"expected true or false, got {always!r}")
    if always and stage is not Stage.REPAIR:
        raise ProfileError(f"{where}.always", "only repair steps take 'always' (the others always run)")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or timeout_s < 0:
        raise ProfileError(f"{where}.timeout_s", f"expected seconds >= 0, got {timeout_s!r}")
    refs = [uses] if isinstance(uses, str) else list(uses) if isinstance(uses, list) else None
    if not refs or not all(isinstance(r, str) for r in refs):
        raise ProfileError(f"{where}.uses", "expected a step name or a list of step names (first available wins)")
    # A single name must exist. In a list of candidates, a name no loaded plugin offers counts as
    # "not installed" (an optional plugin such as the GPL one may be absent), but at least one
    # candidate must exist; and every parameter must be known to a candidate that exists.
    entries: list[StepEntry] = []
    skipped: list[str] = []
    for ref in refs:
        try:
            entries.append(registry.lookup(stage, ref, f"{where}.uses"))
        except ProfileError:
            if len(refs) == 1:
                raise
            skipped.append(f"{ref}: no installed plugin offers it")
    if not entries:
        raise ProfileError(f"{where}.uses", f"none of {refs} is offered by an installed plugin", registry.names(stage))
    known = {f for e in entries for f in params_mod.param_fields(e.spec.params)}
    for key in table:
        if key not in known:
            valid = sorted(known) + list(RESERVED_STEP_KEYS)
            raise ProfileError(where, f"unknown parameter {key!r}", closest_first(key, valid))
    for entry in entries:
        reason = entry.unavailable_reason
        if reason is None:
            own = {k: v for k, v in table.items() if k in params_mod.param_fields(entry.spec.params)}
            return ResolvedStep(
                id=step_id,
                stage=stage,
                spec=entry.spec,
                plugin=entry.plugin,
                params=params_mod.build(entry.spec.params, own, where),
                always=always,
                timeout_s=float(timeout_s),
                fallback_from=tuple(skipped),
            )
        skipped.append(f"{entry.qualified}: {reason}")
    raise ProfileError(where, "no candidate step can run here: " + "; ".join(skipped))
