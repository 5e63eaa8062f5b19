"""The engine: runs a resolved profile's chain over one input at a time.

One ``Engine`` owns one plugin manager and one resolved profile, and is immutable after
construction: every ``run()`` keeps its state in a local :class:`_Run`, so two engines (or two
threads on one engine) never interfere. The engine, not the steps, owns ordering, timing, error
isolation, before/after measurement and the report.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshforge import params as params_mod
from meshforge.asset import AssetView, Derived, Inputs
from meshforge.context import StepContext
from meshforge.errors import InputError, MeshforgeError
from meshforge.io.source import read_source
from meshforge.plugins import PluginRecord, Registry, load_plugins
from meshforge.profiles import ResolvedProfile, ResolvedStep, resolve
from meshforge.report import AssetReport, Metrics, Output, Status, StepRecord, write_json
from meshforge.types import Finding, Generated, Loaded, RepairResult, Severity, SourceFile, Stage, Units

if TYPE_CHECKING:
    import httpx
    import trimesh

Source = str | os.PathLike[str] | bytes | Inputs | Any  # Any: an in-memory trimesh.Trimesh / Scene

log = logging.getLogger("meshforge.engine")

IMAGE_FORMATS = frozenset({"png", "jpeg", "webp", "tiff", "bmp", "gif"})


class Engine:
    """Run meshforge chains from Python.

    >>> engine = Engine("fdm-print-stl")                       # doctest: +SKIP
    >>> report = engine.run("part.stl", out_dir="out")          # doctest: +SKIP
    >>> report.status, [f.code for f in report.findings]        # doctest: +SKIP
    """

    def __init__(
        self,
        profile: str | os.PathLike[str] | Mapping[str, Any] | ResolvedProfile,
        *,
        plugins: Iterable[object] = (),
        entry_points: bool = True,
        blocked: Iterable[str] = (),
        overrides: Iterable[str] | Mapping[str, Any] = (),
        append: Mapping[str, Iterable[str]] | None = None,
        http: httpx.Client | None = None,
        registry: Registry | None = None,
        debug: bool = False,
    ) -> None:
        self._registry = registry or load_plugins(plugins=plugins, entry_points=entry_points, blocked=blocked)
        self.profile: ResolvedProfile = (
            profile if isinstance(profile, ResolvedProfile) else resolve(profile, self._registry, overrides, append)
        )
        self._readers = self._registry.readers()
        self._http = http
        self._own_http: httpx.Client | None = None
        self._http_lock = threading.Lock()
        self.debug = debug or os.environ.get("MESHFORGE_DEBUG", "") in ("1", "true")

    # --- public API ---------------------------------------------------------------------------

    @property
    def plugins(self) -> tuple[PluginRecord, ...]:
        return self._registry.records

    @property
    def registry(self) -> Registry:
        return self._registry

    def with_profile(
        self, profile: str | os.PathLike[str] | Mapping[str, Any], overrides: Iterable[str] | Mapping[str, Any] = ()
    ) -> Engine:
        """A new engine with another profile, sharing this one's loaded plugins."""
        return Engine(profile, registry=self._registry, overrides=overrides, http=self._http, debug=self.debug)

    def run(
        self,
        source: Source,
        *,
        out_dir: str | os.PathLike[str] | None = None,
        id: str | None = None,  # noqa: A002 - the job's id is called id everywhere
        metadata: Mapping[str, Any] | None = None,
        state: Any = None,
    ) -> AssetReport:
        """Preprocess, generate, validate, repair, validate again, export; returns the report."""
        return _Run(self, self._inputs(source, id, metadata), repair=True, out_dir=_path(out_dir), state=state).execute()

    def validate(
        self, source: Source, *, id: str | None = None, metadata: Mapping[str, Any] | None = None  # noqa: A002
    ) -> AssetReport:
        """Preprocess, generate (import) and validate only; writes nothing."""
        return _Run(self, self._inputs(source, id, metadata), repair=False, out_dir=None).execute()

    def close(self) -> None:
        if self._own_http is not None:
            self._own_http.close()
            self._own_http = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- services -----------------------------------------------------------------------------

    def _http_client(self) -> httpx.Client:
        if self._http is not None:
            return self._http
        with self._http_lock:
            if self._own_http is None:
                import httpx

                self._own_http = httpx.Client(timeout=httpx.Timeout(30.0, connect=10.0), follow_redirects=False)
            return self._own_http

    def _isolated_calls(self, hook: str, **kwargs: Any) -> Iterator[Any]:
        """Each plain implementation of ``hook`` called on its own, in pluggy's order, with the
        arguments it names (pluggy lets an implementation take some of them): one that raises is
        logged and skipped, so a broken plugin costs only its own answer (see hookspecs)."""
        for impl in reversed(getattr(self._registry.pm.hook, hook).get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            try:
                yield impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception:
                log.warning("plugin %r: %s raised; skipped", impl.plugin_name, hook, exc_info=True)

    def _notify(self, hook: str, **kwargs: Any) -> None:
        """Call an observer hook (observers never steer: every implementation runs)."""
        for _ in self._isolated_calls(hook, **kwargs):
            pass

    def detect_format(self, head: bytes, filename: str | None) -> str | None:
        """The first format a plugin recognises, in pluggy's call order; one whose sniffer raises
        must not make every file unreadable for everyone."""
        answers = self._isolated_calls("meshforge_detect_format", head=head, filename=filename)
        return next((fmt for fmt in answers if fmt is not None), None)

    def load(self, generated: Generated, limits: Any) -> tuple[Loaded, SourceFile | None]:
        """Turn what a generate step produced into a scene: sniff the format, read it once."""
        if generated.scene is not None:
            scene = _as_scene(generated.scene)
            return Loaded(scene=scene, format="memory", units=generated.units or Units()), None
        assert generated.data is not None
        source = SourceFile(name=generated.filename, data=generated.data, path=generated.path)
        if not source.data:
            raise InputError(source.path or source.name, "file is empty", code="input.empty")
        fmt = self.detect_format(source.data[:4096], source.name)
        if fmt is None:
            raise InputError(source.path or source.name, "not a 3D model format meshforge reads", code="input.unknown_format")
        reader = self._readers.get(fmt)
        if reader is None:
            kind = "an image" if fmt in IMAGE_FORMATS else f"{fmt} data"
            raise InputError(
                source.path or source.name,
                f"is {kind}, and no reader for it is installed (readers: {', '.join(sorted(self._readers))})",
                code="input.unknown_format",
            )
        try:
            loaded = reader.read(source, limits)
        except MeshforgeError:
            raise
        except MemoryError:
            raise InputError(source.path or source.name, f"{fmt} file needs more memory than is available", code="input.too_large") from None
        except Exception as exc:  # third-party parsers raise anything on corrupt bytes
            raise InputError(source.path or source.name, f"corrupt {fmt} file ({type(exc).__name__}: {exc})", code="input.corrupt") from None
        return loaded, source

    # --- inputs -------------------------------------------------------------------------------

    def _inputs(self, source: Source, id: str | None, metadata: Mapping[str, Any] | None) -> Inputs:  # noqa: A002
        if isinstance(source, Inputs):
            changes: dict[str, Any] = {}
            if id is not None:
                changes["id"] = id
            if metadata:
                changes["metadata"] = {**source.metadata, **metadata}
            return replace(source, **changes) if changes else source
        meta = dict(metadata or {})
        if isinstance(source, (bytes, bytearray, memoryview)):
            return Inputs(id=id or "bytes", model=bytes(source), filename=meta.pop("filename", None), metadata=meta)
        if isinstance(source, (str, os.PathLike)):
            path = Path(source)
            head = _peek(path)
            fmt = self.detect_format(head, path.name) if head else None
            if fmt in IMAGE_FORMATS:
                return Inputs(id=id or path.stem, images=(path,), filename=path.name, metadata=meta)
            return Inputs(id=id or path.stem, model=path, filename=path.name, metadata=meta)
        if hasattr(source, "vertices") or hasattr(source, "geometry"):
            return Inputs(id=id or "mesh", scene=source, metadata=meta)
        raise TypeError(f"cannot run on {type(source).__name__}: give a path, bytes, a trimesh object or Inputs")


def _path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


def _peek(path: Path) -> bytes:
    if not path.is_file():  # a pipe or /dev/stdin: what is peeked is gone, so the reader must see it first
        return b""
    try:
        with path.open("rb") as fh:
            return fh.read(4096)
    except OSError:
        return b""  # the import step reports the real problem with the file


def _as_scene(obj: Any) -> trimesh.Scene:
    import trimesh

    if isinstance(obj, trimesh.Scene):
        return obj
    if isinstance(obj, trimesh.Trimesh):
        return trimesh.Scene(obj)
    raise TypeError(f"expected a trimesh Scene or Trimesh, got {type(obj).__name__}")


def measure(scene: trimesh.Scene, units: Units, derived: Derived | None = None) -> Metrics:
    """Before/after figures for the report.

    With ``derived`` the figures are computed once per geometry version: the "after" of one repair
    is the "before" of the next, and the final figures of an unrepaired asset are its first ones.
    """
    cache = derived if derived is not None else Derived(scene)
    metrics = cache.get("core.metrics", lambda: _measure(cache, units))
    return metrics if metrics.units == units.length else replace(metrics, units=units.length)


def _measure(derived: Derived, units: Units) -> Metrics:
    import numpy as np

    v = np.asarray(derived.mesh.vertices, dtype=np.float64)
    f = np.asarray(derived.mesh.faces, dtype=np.int64)
    if len(f) == 0:
        return Metrics(triangles=0, vertices=len(v), bounds=None, volume=None, watertight=None, units=units.length)
    with np.errstate(all="ignore"):
        lo, hi = v.min(axis=0), v.max(axis=0)
        finite = bool(np.isfinite(lo).all() and np.isfinite(hi).all())
    # Signed volume by the divergence theorem, from the per-face products the validate steps use
    # anyway (one pass over the faces, not two). The tetrahedra meet at the vertices' centroid, so
    # an open mesh's figure does not depend on where its origin is; a closed one's is the volume.
    volume = float(derived.face_geometry.vol6.sum() / 6.0) if finite else None
    return Metrics(
        triangles=int(len(f)),
        vertices=int(len(v)),
        bounds=(tuple(map(float, lo)), tuple(map(float, hi))) if finite else None,  # type: ignore[arg-type]
        volume=volume,
        watertight=_closed_surface(derived, f) if finite else None,
        units=units.length,
    )


def _closed_surface(derived: Derived, faces: Any) -> bool:
    """Every edge used by exactly two faces once bit-identical positions are one vertex: a GLB keeps
    a vertex per UV seam side (a closed box is 24 corners), which is no hole. The weld is the one
    the hygiene and topology checks share (``geometry.weld_exact``), so the figure costs a gather."""
    from meshforge.ops.topology import weld

    ids, count = derived.get("geometry.weld_exact", lambda: weld(derived.mesh.vertices))
    return _every_edge_twice(ids[faces], count)


def _every_edge_twice(faces: Any, n_vertices: int) -> bool:
    """trimesh's ``is_watertight`` (every edge used by exactly two faces) from one sort of int64
    edge keys: 4-5x faster than hashing float rows, a third of the memory. The keys are written
    column pair by column pair into one array (no (3n, 2) edge copy: on 1.3 M faces 0.10 -> 0.055 s)."""
    import numpy as np

    n = len(faces)
    key = np.empty(3 * n, dtype=np.int64)
    larger = np.empty(n, dtype=np.int64)
    for k, (i, j) in enumerate(((0, 1), (1, 2), (2, 0))):
        a, b = faces[:, i], faces[:, j]
        out = key[k * n : (k + 1) * n]
        np.minimum(a, b, out=out)
        out *= n_vertices
        out += np.maximum(a, b, out=larger)
    key.sort()
    # each key exactly twice <=> the sorted keys are equal pairs and no pair equals the next one
    if len(key) % 2:
        return False
    pairs = key.reshape(-1, 2)
    return bool((pairs[:, 0] == pairs[:, 1]).all() and (pairs[1:, 0] != pairs[:-1, 1]).all())


@dataclass
class _Asset:
    """Engine-private, mutable state of one asset while its chain runs."""

    scene: trimesh.Scene
    units: Units
    format: str
    source: SourceFile | None
    document: Any
    findings: list[Finding] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    derived: Derived | None = None

    def __post_init__(self) -> None:
        self.derived = Derived(self.scene)

    def replace_scene(self, scene: trimesh.Scene) -> None:
        self.scene = scene
        self.derived = Derived(scene)
        # The reader's document (e.g. the glTF JSON) describes the bytes that were read, not this
        # geometry: container checks must not judge a repaired scene by the original file.
        self.document = None


class _Run:
    """One input through the chain. Lives for one call; holds all per-run state."""

    def __init__(self, engine: Engine, inputs: Inputs, *, repair: bool, out_dir: Path | None, state: Any = None) -> None:
        self.engine = engine
        self.profile = engine.profile
        self.inputs = inputs
        self.repair_enabled = repair
        self.out_dir = out_dir
        self.state = state
        self.records: list[StepRecord] = []
        self.attempts: list[dict[str, Any]] = []
        self.outputs: list[Output] = []
        self.attempt = 1
        self.work_dir: Path | None = None
        self.fixers = _fixers(self.profile)

    # --- orchestration ------------------------------------------------------------------------

    def execute(self) -> AssetReport:
        started = time.perf_counter()
        asset: _Asset | None = None
        initial: list[Finding] = []
        status = Status.UNUSABLE
        try:
            with tempfile.TemporaryDirectory(prefix="meshforge-") as work:
                self.work_dir = Path(work)
                inputs = self._preprocess(self.inputs)
                while True:
                    asset = self._generate(inputs)
                    self._validate(asset)
                    initial = list(asset.findings)
                    if self.repair_enabled and self._repair(asset) and self.profile.run.revalidate_after_repair:
                        asset.findings = [f for f in asset.findings if f.code.startswith("input.")]
                        self._validate(asset)
                    status = Status.FAIL if any(f.is_error for f in asset.findings) else Status.PASS
                    self.attempts.append(self._attempt_summary(asset, status))
                    if status is Status.PASS or not self._should_regenerate(asset):
                        break
                    self.attempt += 1
                if self.repair_enabled and self.out_dir is not None and not self._export(asset, rejected=status is Status.FAIL):
                    status = Status.FAIL
        except Exception as exc:
            # Steps are fenced by _call; this catches what happens between them (a reader's odd
            # scene failing the engine's own figures, memory running out): one asset's report, so
            # a multi-file command or a batch goes on with the next input.
            finding = self._unusable(exc)
            asset_findings = [finding] if asset is None else [*asset.findings, finding]
            return self._report(asset, Status.UNUSABLE, asset_findings, initial or asset_findings, started)
        assert asset is not None
        return self._report(asset, status, asset.findings, initial, started)

    def _unusable(self, exc: BaseException) -> Finding:
        if isinstance(exc, InputError):
            return Finding(code=exc.code, severity=Severity.ERROR, message=f"{exc.where}: {exc.reason}", step="input")
        if isinstance(exc, MemoryError):
            return Finding(code="input.too_large", severity=Severity.ERROR, step="input",
                           message=f"{self.inputs.display_name}: needs more memory than is available")
        log.error("%s: unexpected %s", self.inputs.display_name, type(exc).__name__, exc_info=True)
        detail = "\n" + traceback.format_exc() if self.engine.debug else ""
        return Finding(code="engine.internal_error", severity=Severity.ERROR, step="engine",
                       message=f"{self.inputs.display_name}: could not be processed ({type(exc).__name__}: {exc}){detail}")

    def _should_regenerate(self, asset: _Asset) -> bool:
        run = self.profile.run
        if self.attempt > run.regenerate_attempts:
            return False
        if not self.profile.stage(Stage.GENERATE):
            return False
        errors = [f for f in asset.findings if f.is_error]
        if run.regenerate_on:
            return any(f.code in run.regenerate_on for f in errors)
        return bool(errors)

    def _attempt_summary(self, asset: _Asset, status: Status) -> dict[str, Any]:
        provenance = asset.provenance
        return {
            "attempt": self.attempt,
            "status": str(status),
            "errors": sorted({f.code for f in asset.findings if f.is_error}),
            "provenance": provenance,
        }

    def _attempt_failed(self, error: InputError, provenance: Mapping[str, Any]) -> None:
        """An attempt whose generation gave no usable model is an attempt too (its job may be billed)."""
        self.attempts.append({"attempt": self.attempt, "status": str(Status.UNUSABLE), "errors": [error.code],
                              "provenance": dict(provenance)})

    # --- stages -------------------------------------------------------------------------------

    def _preprocess(self, inputs: Inputs) -> Inputs:
        for step in self.profile.stage(Stage.PREPROCESS):
            result, record = self._call(step, step.spec.apply, inputs)  # type: ignore[union-attr]
            self.records.append(record)
            if isinstance(record.error, InputError):
                raise record.error  # a rejected image or prompt makes the job unusable, with its code
            if isinstance(result, Inputs):
                inputs = result
            elif record.outcome == "ok":
                raise InputError(self.inputs.display_name, f"preprocess step {step.id!r} returned {type(result).__name__}, not Inputs")
        return inputs

    def _generate(self, inputs: Inputs) -> _Asset:
        failures: list[str] = []
        for step in self.profile.stage(Stage.GENERATE):
            generated, record = self._call(step, step.spec.generate, inputs)  # type: ignore[union-attr]
            if record.error is not None:
                if isinstance(record.error, InputError):
                    self.records.append(record)
                    self._attempt_failed(record.error, getattr(record.error, "provenance", {}))
                    raise record.error
                failures.append(f"{step.id}: {record.note}")
            if generated is None:
                self.records.append(replace(record, outcome="skipped" if record.outcome == "ok" else record.outcome,
                                            note=record.note or "inputs are not for this step"))
                continue
            if not isinstance(generated, Generated):
                raise InputError(inputs.display_name, f"generate step {step.id!r} returned {type(generated).__name__}, not Generated")
            try:
                loaded, source = self.engine.load(generated, self.profile.limits)
            except InputError as exc:  # a paid-for model that cannot be read: the report still names its job
                self.records.append(record)
                self._attempt_failed(exc, generated.provenance)
                raise
            units = loaded.units
            if units.length is None and self.profile.run.assume_units:
                units = Units(length=self.profile.run.assume_units, up=units.up)
            asset = _Asset(scene=loaded.scene, units=units, format=loaded.format, source=source, document=loaded.document,
                           findings=list(loaded.findings), provenance=dict(generated.provenance))
            self.records.append(replace(record, details={**record.details, "format": loaded.format, **dict(generated.provenance)},
                                        after=measure(asset.scene, asset.units, asset.derived)))
            return asset
        reason = "; ".join(failures) if failures else "no generate step in the profile accepts this input"
        raise InputError(inputs.display_name, reason, code="input.not_generated")

    def _validate(self, asset: _Asset) -> None:
        for step in self.profile.stage(Stage.VALIDATE):
            view = self._view(asset)
            found, record = self._call(step, lambda v, p, c: [self._stamp(f, step) for f in step.spec.check(v, p, c)], view)  # type: ignore[union-attr]
            new = list(found or [])
            if record.error is not None:
                new.append(self._step_failure(step, record))
            asset.findings.extend(new)
            self.records.append(replace(record, findings=len(new)))

    def _repair(self, asset: _Asset) -> bool:
        changed = False
        for step in self.profile.stage(Stage.REPAIR):
            targets = [f.code for f in asset.findings if f.code in step.spec.fixes]  # type: ignore[union-attr]
            if not (step.always or targets):
                self.records.append(self._skipped(step, "no finding it fixes"))
                continue
            before = measure(asset.scene, asset.units, asset.derived)
            result, record = self._call(step, step.spec.apply, self._view(asset))  # type: ignore[union-attr]
            if record.error is not None:
                asset.findings.append(self._step_failure(step, record))
                self.records.append(replace(record, before=before))
                continue
            if not isinstance(result, RepairResult):
                result = RepairResult.unchanged(f"returned {type(result).__name__}, not RepairResult (ignored)")
            try:
                scene = None if result.scene is None else _as_scene(result.scene)
            except TypeError as exc:  # the step's mistake: its failure, not the run's
                record = replace(record, outcome="failed", note=f"returned a RepairResult whose scene is wrong ({exc})")
                asset.findings.append(self._step_failure(step, record))
                self.records.append(replace(record, before=before))
                continue
            if result.units is not None:
                asset.units = result.units
            after = None
            if scene is not None:
                asset.replace_scene(scene)
                after = measure(asset.scene, asset.units, asset.derived)
                changed = True
            elif result.units is not None:
                changed = True
            self.records.append(
                replace(record, before=before, after=after, note=result.note,
                        details={"targets": sorted(set(targets)), **dict(result.details)})
            )
        return changed

    def _export(self, asset: _Asset, *, rejected: bool) -> bool:
        """Run every export step into one staging folder, then publish their files together: into
        the output folder when the asset passed and every export step worked, else into
        ``rejected/`` (when the profile exports rejected assets). A storefront or print queue
        watching the folder never sees half of an asset. Returns False when an export step failed."""
        assert self.out_dir is not None
        if rejected and not self.profile.run.export_rejected:
            return True
        # Staged inside the output folder (same file system: os.replace publishes atomically), under
        # .meshforge/ beside the job store, so a watcher never sees it and a step abandoned at its
        # time limit that writes on after the cleanup litters no visible folder. Resolved: a step
        # may hand back its paths in any form (a relative --out once dropped every file).
        (self.out_dir / ".meshforge").mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.out_dir / ".meshforge")).resolve()
        try:
            staged: list[tuple[ResolvedStep, _CallRecord, list[Path]]] = []
            claimed: set[Path] = set()
            for step in self.profile.stage(Stage.EXPORT):
                written, record = self._call(step, lambda v, p, c: list(step.spec.write(v, p, c)), self._view(asset), out_dir=staging)  # type: ignore[union-attr]
                files: list[Path] = []
                for path in (written or []) if record.error is None else []:
                    problem = _staged_problem(path, staging, claimed)
                    if problem:
                        record = replace(record, outcome="failed", note=f"returned {path!r}, {problem}")
                        break
                    files.append(Path(path).resolve())
                    claimed.add(files[-1])
                if record.outcome != "ok":
                    asset.findings.append(self._step_failure(step, record))
                staged.append((step, record, files))
            failed = any(record.outcome != "ok" for _, record, _ in staged)
            rejected = rejected or failed
            publish = not rejected or self.profile.run.export_rejected
            final_dir = self.out_dir / "rejected" if rejected else self.out_dir
            for step, record, files in staged:
                if record.outcome != "ok":
                    self.records.append(record)
                    continue
                outputs = []
                for path in files if publish else []:
                    target = final_dir / path.relative_to(staging)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(path, target)  # atomic publish: no half-written output is ever visible
                    outputs.append(_output(target, step.spec.formats, rejected))  # type: ignore[union-attr]
                self.outputs.extend(outputs)
                self.records.append(replace(record, details={"files": [o.path for o in outputs]}))
            return not failed
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):  # gone when empty: a run with no job store leaves no trace
                staging.parent.rmdir()

    # --- helpers ------------------------------------------------------------------------------

    def _view(self, asset: _Asset) -> AssetView:
        assert asset.derived is not None
        return AssetView(
            id=self.inputs.id,
            inputs=self.inputs,
            scene=asset.scene,
            units=asset.units,
            source_format=asset.format,
            source=asset.source,
            document=asset.document,
            findings=tuple(asset.findings),
            derived=asset.derived,
            out_name=_out_name(self.inputs),
        )

    def _context(self, step: ResolvedStep, out_dir: Path | None) -> StepContext:
        return StepContext(
            step=step,
            log=logging.getLogger(f"meshforge.plugin.{step.plugin}"),
            out_dir=out_dir,
            work_dir=self.work_dir,
            limits=self.profile.limits,
            attempt=self.attempt,
            http_factory=self.engine._http_client,
            state=self.state,
            params_lookup=self._params_of,
        )

    def _params_of(self, uses: str) -> Any:
        return next((s.params for s in self.profile.chain if s.spec.name == uses), None)

    def _call(self, step: ResolvedStep, fn: Callable[..., Any], target: Any, *, out_dir: Path | None = None) -> tuple[Any, _CallRecord]:
        ctx = self._context(step, out_dir)
        started = time.perf_counter()
        result: Any = None
        error: BaseException | None = None
        outcome = "ok"
        note = ""
        try:
            result = _with_timeout(fn, (target, step.params, ctx), step.timeout_s)
        except FutureTimeout:
            outcome, note = "timeout", f"ran past its {step.timeout_s:g} s limit"
            error = TimeoutError(note)
        except InputError as exc:
            outcome, note, error = "failed", f"{exc.where}: {exc.reason}", exc
        except (Exception, SystemExit) as exc:  # SystemExit: a step calling sys.exit() fails itself, not the run
            outcome, note, error = "failed", f"{type(exc).__name__}: {exc}", exc
            if self.engine.debug:
                note += "\n" + traceback.format_exc()
            log.debug("step %s failed", step.id, exc_info=True)
        record = _CallRecord(
            step_id=step.id,
            name=step.spec.name,
            plugin=step.plugin,
            stage=step.stage.value,
            params=params_mod.as_plain(step.params),
            seconds=time.perf_counter() - started,
            outcome=outcome,
            note=note,
            attempt=self.attempt,
            error=error,
        )
        self.engine._notify("meshforge_step_finished", record=record)
        return result, record

    def _skipped(self, step: ResolvedStep, note: str) -> StepRecord:
        return StepRecord(step_id=step.id, name=step.spec.name, plugin=step.plugin, stage=step.stage.value,
                          params=params_mod.as_plain(step.params), seconds=0.0, outcome="skipped", note=note, attempt=self.attempt)

    def _stamp(self, finding: Finding, step: ResolvedStep) -> Finding:
        if not isinstance(finding, Finding):
            raise TypeError(f"step {step.id!r} yielded {type(finding).__name__}, not Finding")
        return replace(finding, step=step.id, fixable_by=self.fixers.get(finding.code, ()))

    def _step_failure(self, step: ResolvedStep, record: _CallRecord) -> Finding:
        code = "engine.step_timeout" if record.outcome == "timeout" else "engine.step_failed"
        return Finding(
            code=code,
            severity=Severity.ERROR,
            message=f"{self.inputs.display_name}: plugin {step.plugin!r}, step {step.id!r} ({step.spec.name}): {record.note.splitlines()[0] if record.note else ''}",
            step=step.id,
        )

    def _report(self, asset: _Asset | None, status: Status, findings: list[Finding], initial: list[Finding], started: float) -> AssetReport:
        from meshforge import __version__

        source = asset.source if asset is not None else None
        input_info: dict[str, Any] = {"id": self.inputs.id, "name": self.inputs.display_name}
        if self.inputs.images:
            input_info["images"] = [str(p) for p in self.inputs.images]
        if self.inputs.prompt:
            input_info["prompt"] = self.inputs.prompt
        if source is not None:
            input_info.update(
                path=str(source.path) if source.path else None,
                bytes=len(source.data),
                sha256=hashlib.sha256(source.data).hexdigest(),
            )
        if asset is not None:
            input_info["format"] = asset.format
        metrics = None
        if asset is not None and status is not Status.UNUSABLE:
            try:
                metrics = measure(asset.scene, asset.units, asset.derived)
            except Exception:  # figures for the report must never turn a verdict into a crash
                metrics = None
        report = AssetReport(
            input=input_info,
            profile=self.profile.to_dict(),
            status=status,
            findings=tuple(findings),
            initial_findings=tuple(initial) if self.repair_enabled else (),
            steps=tuple(r.as_record() if isinstance(r, _CallRecord) else r for r in self.records),
            outputs=tuple(self.outputs),
            attempts=tuple(self.attempts),
            metrics=metrics,
            seconds=time.perf_counter() - started,
            meshforge_version=__version__,
        )
        if self.out_dir is not None and self.repair_enabled:
            folder = self.out_dir / "rejected" if status is not Status.PASS else self.out_dir
            write_json(folder / f"{_out_name(self.inputs)}.report.json", report.to_dict())
        self.engine._notify("meshforge_run_finished", report=report)
        return report


@dataclass(frozen=True, kw_only=True)
class _CallRecord(StepRecord):
    error: BaseException | None = None

    def as_record(self) -> StepRecord:
        fields = {k: getattr(self, k) for k in StepRecord.__dataclass_fields__}
        return StepRecord(**fields)


def _with_timeout(fn: Callable[..., Any], args: tuple[Any, ...], seconds: float) -> Any:
    if not seconds:
        return fn(*args)
    # A thread cannot be killed: on timeout the step is abandoned (its result dropped) and the
    # run goes on. Batch workers run in processes, where a runaway step is killed for real.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meshforge-step")
    try:
        return pool.submit(fn, *args).result(timeout=seconds)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _staged_problem(path: Any, staging: Path, claimed: set[Path]) -> str | None:
    """Why an export step's returned ``path`` cannot be published, or None."""
    if not isinstance(path, (str, os.PathLike)):
        return "which is not a path"
    resolved = Path(path).resolve()
    if not (resolved.is_file() and staging in resolved.parents):
        return "which is not a file it wrote in its output folder"
    if resolved in claimed:
        return "which was already returned (by this step or an earlier one)"
    return None


def _fixers(profile: ResolvedProfile) -> dict[str, tuple[str, ...]]:
    out: dict[str, list[str]] = {}
    for step in profile.stage(Stage.REPAIR):
        for code in step.spec.fixes:  # type: ignore[union-attr]
            out.setdefault(code, []).append(step.id)
    return {k: tuple(v) for k, v in out.items()}


def _out_name(inputs: Inputs) -> str:
    return output_stem(inputs.filename or inputs.id)


def output_stem(name: str | None) -> str:
    """The base name of an input's output files (``chair`` for ``chair.glb``; unsafe characters -> ``_``)."""
    stem = Path(name).stem if name else "asset"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip(".")
    return safe or "asset"


def _output(path: Path, formats: tuple[str, ...], rejected: bool) -> Output:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    suffix = path.suffix.lstrip(".").lower()
    fmt = suffix if suffix in formats or not formats else formats[0]
    return Output(path=str(path), format=fmt, bytes=path.stat().st_size, sha256=digest.hexdigest(), rejected=rejected)


__all__ = ["Engine", "measure"]
