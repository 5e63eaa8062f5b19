"""Safe glTF 2.0 / GLB reader: the container is parsed here, every range checked before data is touched.

* GLB header and chunk lengths are checked against the file; the JSON is size-capped.
* Buffers come only from the GLB BIN chunk, ``data:`` URIs under a cap, or files INSIDE the model's
  folder (symlinks resolved). ``..``, absolute paths, ``file:`` and any remote scheme are never read or
  fetched: they become issues.
* Accessors, bufferViews, indices and the node graph are checked before use; the findings the
  Khronos glTF-Validator would report as data errors are computed once, while decoding, and kept in
  :attr:`GltfDocument.issues` for the ``gltf.structure`` step.
* Draco (DracoPy) and meshopt (meshoptimizer) payloads are decoded when those packages are installed,
  then validated like plain data; otherwise the primitive is skipped with ``compressed_geometry``.
* Images are probed with :mod:`meshforge.io.images` (bombs and corrupt data refused before decoding).

The scene is built with numpy straight from the accessors (one decode), keeping PBR materials,
textures and UVs as trimesh ``PBRMaterial``/``TextureVisuals`` so exporters can write them back.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
import weakref
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np

from meshforge.errors import InputError
from meshforge.ops import gltf_checks as checks
from meshforge.ops.gltf_checks import ERROR, INFO, WARNING, Issue
from meshforge.types import Loaded, ReadLimits, SourceFile, Units

GLB_MAGIC = b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_DATA_URI_BYTES = 32 * 1024 * 1024

COMPONENTS: dict[int, tuple[type, int]] = {
    5120: (np.int8, 1), 5121: (np.uint8, 1), 5122: (np.int16, 2), 5123: (np.uint16, 2), 5125: (np.uint32, 4), 5126: (np.float32, 4),
}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
NORMALIZE_DIVISOR = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}

DRACO = "KHR_draco_mesh_compression"
MESHOPT = ("EXT_meshopt_compression", "KHR_meshopt_compression")
# Extensions whose absence of support changes nothing we read (materials, texture transforms, lights...).
PASSIVE_EXTENSIONS = frozenset({
    "KHR_materials_emissive_strength", "KHR_materials_clearcoat", "KHR_materials_ior", "KHR_materials_sheen",
    "KHR_materials_specular", "KHR_materials_transmission", "KHR_materials_volume", "KHR_materials_unlit",
    "KHR_materials_variants", "KHR_materials_iridescence", "KHR_materials_anisotropy", "KHR_materials_dispersion",
    "KHR_materials_pbrSpecularGlossiness", "KHR_texture_transform", "KHR_lights_punctual", "KHR_mesh_quantization",
    "EXT_mesh_gpu_instancing", "KHR_xmp_json_ld", "KHR_animation_pointer",
})
IMAGE_MIMES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp"}


def supported_extensions() -> frozenset[str]:
    """Extensions this reader can honour when a file *requires* them (decoders checked lazily)."""
    out = set(PASSIVE_EXTENSIONS)
    if _importable("DracoPy"):
        out.add(DRACO)
    if _importable("meshoptimizer"):
        out.update(MESHOPT)
    if _pillow_decodes_webp():
        out.add("EXT_texture_webp")
    return frozenset(out)


def _pillow_decodes_webp() -> bool:
    from PIL import features

    return bool(features.check("webp"))


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@dataclass
class ImageRef:
    index: int
    data: bytes | None = None
    declared_mime: str | None = None
    format: str | None = None  # "PNG", "JPEG"... from the header
    mode: str | None = None
    width: int = 0
    height: int = 0
    uri_kind: str = "buffer_view"  # buffer_view | data | file | remote | outside | missing
    image: Any = None  # decoded PIL image (8-bit RGB/RGBA) or None

    @property
    def mime(self) -> str | None:
        return IMAGE_MIMES.get(self.format or "", None) if self.format else self.declared_mime


@dataclass
class GltfDocument:
    """The glTF JSON, its resolved resources, and every structural issue found while reading."""

    json: dict[str, Any]
    format: str  # "glb" | "gltf"
    name: str
    file_bytes: int
    buffers: list[bytes | memoryview | None] = field(default_factory=list)  # GLB BIN: a view of the file's bytes
    images: list[ImageRef] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    external_files: list[str] = field(default_factory=list)  # URIs read from the model's folder
    primitive_count: int = 0
    draw_calls: int = 0
    triangles: int = 0  # after instancing
    tangent_primitives: int = 0
    _accessors: dict[int, np.ndarray | None] = field(default_factory=dict, repr=False)
    _views: dict[int, memoryview | None] = field(default_factory=dict, repr=False)
    _draco: dict[int, np.ndarray] = field(default_factory=dict, repr=False)  # accessor index -> decoded data
    _checked: set[tuple[int, str]] = field(default_factory=set, repr=False)  # (accessor, semantic) already checked
    _zero_filled: int = field(default=0, repr=False)  # bytes of sparse accessors without a bufferView held (cached)
    _zero_checked: int = field(default=0, repr=False)  # bytes of such unused accessors decoded to be checked and freed
    _meshopt_decoded: int = field(default=0, repr=False)  # bytes meshopt views have decoded to so far
    _scene_ref: Any = field(default=None, repr=False)

    def add(self, code: str, severity: str, pointer: str, message: str, **kw: Any) -> None:
        self.issues.append(Issue(code=code, severity=severity, pointer=pointer, message=message, **kw))

    def items(self, key: str) -> list[Any]:
        value = self.json.get(key, [])
        return value if isinstance(value, list) else []

    @property
    def extensions_used(self) -> list[str]:
        return [e for e in self.json.get("extensionsUsed", []) or [] if isinstance(e, str)]

    @property
    def extensions_required(self) -> list[str]:
        return [e for e in self.json.get("extensionsRequired", []) or [] if isinstance(e, str)]

    def first_check(self, index: int, semantic: str) -> bool:
        """True the first time accessor ``index`` is checked as ``semantic``: an accessor shared by many
        primitives is scanned, and reported, once (not once per primitive: 20,000 primitives may share one)."""
        if (index, semantic) in self._checked:
            return False
        self._checked.add((index, semantic))
        return True

    def built(self, scene: Any) -> bool:
        """True when ``scene`` is the very scene this document was read into (not a repaired one)."""
        return self._scene_ref is not None and self._scene_ref() is scene

    # --- buffer views and accessors ------------------------------------------------------

    def view_bytes(self, index: int) -> memoryview | None:
        if not isinstance(index, int):  # a list or an object where an index belongs: not a cache key either
            self.add("TYPE_MISMATCH", ERROR, "/bufferViews", f"bufferView reference {index!r} is not an integer")
            return None
        if index in self._views:
            return self._views[index]
        self._views[index] = result = self._view_bytes(index)
        return result

    def _view_bytes(self, index: int) -> memoryview | None:
        views = self.items("bufferViews")
        if not (isinstance(index, int) and 0 <= index < len(views)) or not isinstance(views[index], dict):
            return None
        view = views[index]
        ext = next((view["extensions"][k] for k in MESHOPT if isinstance(view.get("extensions"), dict) and k in view["extensions"]), None)
        if isinstance(ext, dict):
            return _decode_meshopt(self, index, ext)
        buf = self._buffer(view.get("buffer"))
        if buf is None:
            return None
        start = view.get("byteOffset", 0)
        length = view.get("byteLength")
        if not (isinstance(start, int) and isinstance(length, int) and start >= 0 and length >= 0) or start + length > len(buf):
            return None
        return memoryview(buf)[start:start + length]

    def _buffer(self, index: Any) -> bytes | memoryview | None:
        if isinstance(index, int) and 0 <= index < len(self.buffers):
            return self.buffers[index]
        return None

    def accessor(self, index: int) -> np.ndarray | None:
        """Decoded accessor data as ``(count, components)`` (float for normalized ints), or None."""
        if index in self._accessors:
            return self._accessors[index]
        result = self._accessors[index] = self._decode_accessor(index)
        return result

    def _decode_accessor(self, index: int, *, cache: bool = True) -> np.ndarray | None:
        """``cache=False``: decoded to be checked and dropped (not charged to the zero-filled budget)."""
        accessors = self.items("accessors")
        if not (isinstance(index, int) and 0 <= index < len(accessors)) or not isinstance(accessors[index], dict):
            return None
        if index in self._draco:
            return self._draco[index]
        acc = accessors[index]
        pointer = f"/accessors/{index}"
        ctype, atype, count = acc.get("componentType"), acc.get("type"), acc.get("count")
        if (not isinstance(ctype, int) or ctype not in COMPONENTS or not isinstance(atype, str) or atype not in TYPE_SIZES
                or not isinstance(count, int) or count < 1):
            self.add("VALUE_NOT_IN_LIST", ERROR, pointer, f"accessor has componentType {ctype!r}, type {atype!r}, count {count!r}")
            return None
        dtype, csize = COMPONENTS[ctype]
        ncomp = TYPE_SIZES[atype]
        elem = csize * ncomp
        offset = acc.get("byteOffset", 0)
        if not isinstance(offset, int) or offset < 0:
            self.add("VALUE_NOT_IN_RANGE", ERROR, f"{pointer}/byteOffset", f"byteOffset {offset!r} is invalid")
            return None
        view_index = acc.get("bufferView")
        sparse = acc.get("sparse")
        if view_index is None:
            # Zeros by the spec (the base of sparse data, placeholders): no byte of the file backs them, so
            # the declared count alone would size the array. One accessor may not exceed max_vertices
            # elements; the sparse ones, which become real arrays, share one budget while they are
            # held (cached): a mesh with 32 sparse morph targets, each checked and freed, is not charged
            # for all of them at once, and a plain zero view allocates nothing.
            limits = _limits(self)
            budget = 12 * max(1, limits.max_vertices)
            if count > max(1, limits.max_vertices):
                self.add("ACCESSOR_TOO_LONG", ERROR, pointer, f"accessor without bufferView declares {count} zero-filled elements, "
                         f"over limits.max_vertices ({limits.max_vertices})", measured=count, threshold=limits.max_vertices)
                return None
            zero = np.zeros((1, ncomp), dtype=dtype)
            if not isinstance(sparse, dict):
                # a zero-stride view: nothing allocated, however long (checks read it, the scene copies it)
                return np.broadcast_to(_denormalize(zero, acc), (count, ncomp))
            spent = self._zero_filled if cache else self._zero_checked
            if spent + count * elem > budget:
                if not cache:  # only to be checked, and valid by the spec: left unchecked, said so, never an error
                    self.add("accessor_not_checked", INFO, pointer, f"sparse accessor without bufferView ({count * elem} bytes) not "
                             f"decoded: unused accessors like it already took the {budget}-byte budget (12 x limits.max_vertices)")
                    return None
                self.add("ACCESSOR_TOO_LONG", ERROR, pointer, f"sparse accessor without bufferView needs {count * elem} bytes, and "
                         f"{spent} are held by others: over the {budget} bytes all of them may hold (12 x limits.max_vertices)",
                         measured=spent + count * elem, threshold=budget)
                return None
            if cache:
                self._zero_filled += count * elem
            else:
                self._zero_checked += count * elem
            data = np.broadcast_to(zero, (count, ncomp))  # _apply_sparse makes the one real copy
        else:
            raw = self.view_bytes(view_index)
            if raw is None:
                return None  # reported by the bufferView/buffer checks
            view = self.items("bufferViews")[view_index]
            stride = view.get("byteStride") or elem
            if offset % csize:
                self.add("ACCESSOR_OFFSET_ALIGNMENT", ERROR, f"{pointer}/byteOffset",
                         f"byteOffset {offset} is not a multiple of the component size {csize}")
            total = offset + int(view.get("byteOffset", 0) or 0)
            if total % csize:
                self.add("ACCESSOR_TOTAL_OFFSET_ALIGNMENT", ERROR, f"{pointer}/byteOffset",
                         f"total byteOffset {total} is not a multiple of the component size {csize}")
            if not isinstance(stride, int) or stride < elem:
                self.add("ACCESSOR_SMALL_BYTESTRIDE", ERROR, pointer, f"byteStride {stride} is smaller than the element size {elem}")
                return None
            needed = offset + stride * (count - 1) + elem
            if needed > len(raw):
                self.add("ACCESSOR_TOO_LONG", ERROR, pointer,
                         f"accessor needs {needed} bytes (offset {offset} + {count} x stride {stride}) but its bufferView holds {len(raw)}",
                         measured=needed, threshold=len(raw))
                return None
            if stride == elem:
                # tightly packed: a read-only view of the file's bytes, no copy (numpy copes with misalignment)
                data = np.frombuffer(raw, dtype=dtype, count=count * ncomp, offset=offset).reshape(count, ncomp)
            else:
                base = np.frombuffer(raw, dtype=np.uint8, count=needed - offset, offset=offset)
                rows = np.lib.stride_tricks.as_strided(base, shape=(count, elem), strides=(stride, 1), writeable=False)
                data = np.ascontiguousarray(rows).view(dtype).reshape(count, ncomp)
        if isinstance(sparse, dict):
            data = _apply_sparse(self, index, acc, data, dtype, ncomp)
            if data is None:
                return None
        data = _denormalize(data, acc)
        data.flags.writeable = False
        return data


def _limits(doc: GltfDocument) -> ReadLimits:
    return getattr(doc, "_limits_value", ReadLimits())


def _denormalize(data: np.ndarray, acc: dict[str, Any]) -> np.ndarray:
    """A ``normalized`` integer accessor's values as float32 in [0, 1] / [-1, 1], as glTF 2.0 3.11 maps them
    (``max(c / (2**(bits-1) - 1), -1)`` signed, ``c / (2**bits - 1)`` unsigned); any other data unchanged."""
    ctype = acc.get("componentType")
    if not acc.get("normalized") or ctype not in NORMALIZE_DIVISOR:
        return data
    return np.maximum(np.asarray(data, dtype=np.float32) / np.float32(NORMALIZE_DIVISOR[ctype]), np.float32(-1.0)).astype(np.float32)


def _bounds_as_decoded(acc: dict[str, Any]) -> dict[str, Any]:
    """``acc`` with min/max mapped like its data, for :func:`checks.check_bounds`.

    The spec keeps min/max in the stored integers even when ``normalized`` is set ("normalized has no
    effect on array values"), while :meth:`GltfDocument.accessor` returns normalized floats: compared
    as they stand, every valid KHR_mesh_quantization file would get ACCESSOR_MIN/MAX_MISMATCH.
    """
    if not acc.get("normalized") or acc.get("componentType") not in NORMALIZE_DIVISOR:
        return acc
    out = dict(acc)
    for key in ("min", "max"):
        if not isinstance(acc.get(key), list):
            continue
        try:
            declared = np.asarray(acc[key], dtype=np.float64).reshape(1, -1)
        except (TypeError, ValueError):
            continue  # left as written: check_bounds reports it (TYPE_MISMATCH)
        out[key] = _denormalize(declared, acc).reshape(-1).tolist()
    return out


def _apply_sparse(doc: GltfDocument, index: int, acc: dict[str, Any], data: np.ndarray, dtype: Any, ncomp: int) -> np.ndarray | None:
    pointer = f"/accessors/{index}/sparse"
    sparse = acc["sparse"]
    count = sparse.get("count")
    idx, val = sparse.get("indices"), sparse.get("values")
    if not isinstance(count, int) or count < 1 or count > len(data) or not isinstance(idx, dict) or not isinstance(val, dict):
        doc.add("ACCESSOR_SPARSE_COUNT_OUT_OF_RANGE", ERROR, pointer, f"sparse count {count!r} is not within 1..{len(data)}")
        return None
    ictype = idx.get("componentType")
    if ictype not in (5121, 5123, 5125):
        doc.add("VALUE_NOT_IN_LIST", ERROR, f"{pointer}/indices/componentType", f"sparse index componentType {ictype!r}")
        return None
    raw_i = doc.view_bytes(idx.get("bufferView"))
    raw_v = doc.view_bytes(val.get("bufferView"))
    if raw_i is None or raw_v is None:
        doc.add("UNRESOLVED_REFERENCE", ERROR, pointer, "sparse indices or values bufferView cannot be resolved")
        return None
    itype, isize = COMPONENTS[ictype]
    ioff, voff = idx.get("byteOffset", 0) or 0, val.get("byteOffset", 0) or 0
    if not (isinstance(ioff, int) and isinstance(voff, int) and ioff >= 0 and voff >= 0):
        doc.add("VALUE_NOT_IN_RANGE", ERROR, pointer, f"sparse byteOffset {ioff!r} / {voff!r} is not a non-negative integer")
        return None
    vsize = np.dtype(dtype).itemsize * ncomp
    if ioff + isize * count > len(raw_i) or voff + vsize * count > len(raw_v):
        doc.add("ACCESSOR_TOO_LONG", ERROR, pointer, "sparse indices or values overrun their bufferView")
        return None
    sidx = np.frombuffer(raw_i, dtype=itype, count=count, offset=ioff).astype(np.int64)
    svals = np.frombuffer(raw_v, dtype=dtype, count=count * ncomp, offset=voff).reshape(count, ncomp)
    if count > 1 and (np.diff(sidx) <= 0).any():
        doc.add("ACCESSOR_SPARSE_INDICES_NON_INCREASING", ERROR, f"{pointer}/indices", "sparse indices are not strictly increasing")
    oob = sidx >= len(data)
    if oob.any():
        doc.add("ACCESSOR_SPARSE_INDEX_OOB", ERROR, f"{pointer}/indices",
                f"{int(oob.sum())} sparse index value(s) >= accessor count {len(data)}", count=int(oob.sum()))
    out = np.array(data, copy=True)
    keep = ~oob
    out[sidx[keep]] = svals[keep]
    return out


# --- meshopt / Draco -----------------------------------------------------------------------


def _decode_meshopt(doc: GltfDocument, index: int, ext: dict[str, Any]) -> memoryview | None:
    pointer = f"/bufferViews/{index}/extensions"
    try:
        import meshoptimizer
    except ImportError:
        doc.add("compressed_geometry", ERROR, pointer, "meshopt-compressed data, and the meshoptimizer package is not installed")
        return None
    buf = doc._buffer(ext.get("buffer"))
    start, length = ext.get("byteOffset", 0), ext.get("byteLength")
    stride, count, mode = ext.get("byteStride"), ext.get("count"), ext.get("mode")
    if buf is None or not all(isinstance(v, int) and v >= 0 for v in (start, length, stride, count)) or start + length > len(buf):
        doc.add("compressed_geometry", ERROR, pointer, "meshopt extension points outside its buffer")
        return None
    # A budget for the whole file, not per view: zeros compress 64:1, and forty views may name the same
    # 7 MB payload, each decoding to its own 480 MB.
    budget = 4 * _limits(doc).max_vertices * 16
    if doc._meshopt_decoded + stride * count > budget:
        doc.add("compressed_geometry", ERROR, pointer, f"meshopt data declares {count} x {stride} bytes, over the {budget} bytes "
                "all meshopt views of a file may decode to (4 x limits.max_vertices x 16)")
        return None
    doc._meshopt_decoded += stride * count
    payload = np.frombuffer(buf, dtype=np.uint8, count=length, offset=start)
    try:
        if mode == "ATTRIBUTES":
            # Not ``dtype=np.uint8``: the binding then allocates ``count`` bytes, not ``count * stride``,
            # and the C decoder writes past the end (heap corruption, a segfault later). Its default
            # float32 mode allocates the whole buffer; the bytes are reinterpreted below.
            out = meshoptimizer.decode_vertex_buffer(count, stride, payload)
            if out.nbytes != count * stride:
                raise ValueError(f"decoder returned {out.nbytes} bytes for {count} x {stride}")
            filt = ext.get("filter", "NONE")
            if filt in ("OCTAHEDRAL", "QUATERNION", "EXPONENTIAL"):
                # the C filters assert on other strides (an abort, not an exception): refuse first
                legal = {"OCTAHEDRAL": stride in (4, 8), "QUATERNION": stride == 8, "EXPONENTIAL": stride % 4 == 0}[filt]
                if not legal:
                    doc.add("compressed_geometry", ERROR, pointer, f"meshopt {filt} filter with byteStride {stride}")
                    return None
                fn = {"OCTAHEDRAL": meshoptimizer.decode_filter_oct, "QUATERNION": meshoptimizer.decode_filter_quat,
                      "EXPONENTIAL": meshoptimizer.decode_filter_exp}[filt]
                out = fn(np.ascontiguousarray(out).view(np.uint8).reshape(-1), count, stride)
        elif mode == "TRIANGLES":
            out = meshoptimizer.decode_index_buffer(count, stride, payload)
        elif mode == "INDICES":
            out = meshoptimizer.decode_index_sequence(count, stride, payload)
        else:
            doc.add("compressed_geometry", ERROR, pointer, f"unknown meshopt mode {mode!r}")
            return None
    except Exception as exc:  # the decoder rejects corrupt payloads with ValueError/RuntimeError
        doc.add("compressed_geometry", ERROR, pointer, f"meshopt payload cannot be decoded ({exc})")
        return None
    # The binding's index decoders allocate ``count`` uint32 and let the C decoder write ``count``
    # indices of ``stride`` bytes into it: with 2-byte indices the data is the first half of the
    # buffer, not one index per uint32. Either way the view is its first ``count * stride`` bytes.
    raw = np.ascontiguousarray(out).view(np.uint8).reshape(-1)
    if raw.size < count * stride:
        doc.add("compressed_geometry", ERROR, pointer, f"meshopt decoder returned {raw.size} bytes for {count} x {stride}")
        return None
    return memoryview(raw[:count * stride].tobytes())


def _decode_draco(doc: GltfDocument, mi: int, pi: int, prim: dict[str, Any], ext: dict[str, Any]) -> bool:
    """Decode a Draco primitive; stores the decoded arrays under the primitive's accessor indices."""
    pointer = f"/meshes/{mi}/primitives/{pi}/extensions/{DRACO}"
    try:
        import DracoPy
    except ImportError:
        doc.add("compressed_geometry", ERROR, pointer, "Draco-compressed primitive, and the DracoPy package is not installed")
        return False
    raw = doc.view_bytes(ext.get("bufferView"))
    if raw is None:
        doc.add("compressed_geometry", ERROR, pointer, "Draco bufferView cannot be resolved")
        return False
    try:
        mesh = DracoPy.decode(bytes(raw))
    except Exception as exc:
        doc.add("compressed_geometry", ERROR, pointer, f"Draco payload cannot be decoded ({exc})")
        return False
    attributes = prim.get("attributes", {}) if isinstance(prim.get("attributes"), dict) else {}
    draco_ids = ext.get("attributes", {}) if isinstance(ext.get("attributes"), dict) else {}
    accessors = doc.items("accessors")
    for semantic, acc_index in attributes.items():
        uid = draco_ids.get(semantic)
        if uid is None or not isinstance(acc_index, int):
            continue
        attr = mesh.get_attribute_by_unique_id(uid)
        if attr is None:
            doc.add("compressed_geometry", ERROR, pointer, f"Draco payload has no attribute {uid} for {semantic}")
            return False
        arr = np.asarray(attr["data"], dtype=np.float32)
        arr = arr.reshape(len(arr), -1)
        # The decoder hands back the stored integers (KHR_mesh_quantization: int16 positions, int8
        # normals...); the accessor's componentType/normalized say what they mean, as for plain data.
        acc = accessors[acc_index] if 0 <= acc_index < len(accessors) and isinstance(accessors[acc_index], dict) else {}
        arr = np.ascontiguousarray(_denormalize(arr, acc))
        arr.flags.writeable = False
        doc._draco[acc_index] = arr
    if isinstance(prim.get("indices"), int):
        faces = np.asarray(mesh.faces, dtype=np.uint32).reshape(-1, 1)
        faces.flags.writeable = False
        doc._draco[prim["indices"]] = faces
    return True


# --- container ------------------------------------------------------------------------------


def parse_glb(data: bytes, where: Any) -> tuple[dict[str, Any], memoryview | None, list[Issue]]:
    """Split a GLB into its JSON and BIN chunk; lengths checked against the bytes actually there.

    The BIN chunk is a read-only view of ``data`` (no copy: accessors are decoded straight from it).
    """
    issues: list[Issue] = []

    def fatal(code: str, reason: str, input_code: str = "input.corrupt") -> InputError:
        return InputError(where, f"{reason} ({code})", code=input_code)

    if len(data) < 12:
        raise fatal("GLB_UNEXPECTED_END_OF_HEADER", f"GLB is {len(data)} bytes, shorter than its 12-byte header")
    magic, version, declared = data[:4], *struct.unpack_from("<II", data, 4)
    if magic != GLB_MAGIC:
        raise fatal("GLB_INVALID_MAGIC", f"GLB magic is {magic!r}, expected b'glTF'")
    if version != 2:
        raise fatal("GLB_INVALID_VERSION", f"GLB container version {version}; only version 2 is glTF 2.0", "input.unsupported")
    end = len(data)
    if declared != len(data):
        issues.append(Issue(code="GLB_LENGTH_MISMATCH", severity=ERROR, pointer="",
                            message=f"GLB header declares {declared} bytes, the file has {len(data)}", measured=len(data), threshold=declared))
        end = min(declared, len(data)) if declared >= 20 else len(data)
    pos = 12
    json_chunk: memoryview | None = None
    bin_chunk: memoryview | None = None
    whole = memoryview(data).toreadonly()
    first = True
    while pos < end:
        if end - pos < 8:
            if json_chunk is None:
                raise fatal("GLB_UNEXPECTED_END_OF_CHUNK_HEADER", f"GLB ends inside a chunk header at byte {pos}")
            issues.append(Issue(code="GLB_UNEXPECTED_END_OF_CHUNK_HEADER", severity=ERROR, pointer="", message=f"GLB ends inside a chunk header at byte {pos}"))
            break
        length, ctype = struct.unpack_from("<II", data, pos)
        pos += 8
        if length % 4:
            issues.append(Issue(code="GLB_CHUNK_LENGTH_UNALIGNED", severity=ERROR, pointer="", message=f"chunk at byte {pos - 8} has length {length}, not a multiple of 4"))
        if length > end - pos:
            if json_chunk is None and (first or ctype == CHUNK_JSON):
                raise fatal("GLB_UNEXPECTED_END_OF_CHUNK_DATA", f"chunk at byte {pos - 8} claims {length} bytes, only {end - pos} remain")
            issues.append(Issue(code="GLB_UNEXPECTED_END_OF_CHUNK_DATA", severity=ERROR, pointer="",
                                message=f"chunk at byte {pos - 8} claims {length} bytes, only {end - pos} remain", measured=end - pos, threshold=length))
            break
        chunk = whole[pos:pos + length]
        pos += length
        if first and ctype != CHUNK_JSON:
            raise fatal("GLB_UNEXPECTED_FIRST_CHUNK", "first GLB chunk is not JSON")
        first = False
        if ctype == CHUNK_JSON:
            if json_chunk is not None:
                issues.append(Issue(code="GLB_DUPLICATE_CHUNK", severity=ERROR, pointer="", message="second JSON chunk"))
                continue
            json_chunk = chunk
        elif ctype == CHUNK_BIN:
            if bin_chunk is not None:
                issues.append(Issue(code="GLB_DUPLICATE_CHUNK", severity=ERROR, pointer="", message="second BIN chunk"))
                continue
            bin_chunk = chunk
        else:
            issues.append(Issue(code="GLB_UNKNOWN_CHUNK_TYPE", severity=WARNING, pointer="", message=f"unknown chunk type 0x{ctype:08x} ignored"))
    if json_chunk is None:
        raise fatal("GLB_UNEXPECTED_END_OF_CHUNK_HEADER", "GLB has no JSON chunk")
    return parse_json(bytes(json_chunk), where), bin_chunk, issues


def parse_json(raw: bytes, where: Any) -> dict[str, Any]:
    if len(raw) > MAX_JSON_BYTES:
        raise InputError(where, f"glTF JSON is {len(raw) / 1e6:.0f} MB, over the {MAX_JSON_BYTES // 2**20} MiB cap", code="input.too_large")
    try:
        text = raw.decode("utf-8-sig")
        doc = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(where, f"glTF JSON is invalid (INVALID_JSON: {str(exc)[:120]})", code="input.corrupt") from None
    if not isinstance(doc, dict):
        raise InputError(where, "glTF JSON is not an object (INVALID_JSON)", code="input.corrupt")
    asset = doc.get("asset")
    version = asset.get("version") if isinstance(asset, dict) else None
    if not isinstance(version, str) or not version.split(".")[0] == "2":
        raise InputError(where, f"not a glTF 2.0 asset (asset.version {version!r}; UNKNOWN_ASSET_MAJOR_VERSION)", code="input.unsupported")
    return doc


# --- URIs ------------------------------------------------------------------------------------


def classify_uri(uri: str) -> str:
    """``data`` | ``remote`` | ``outside`` (climbs out, absolute, file:) | ``invalid`` | ``relative``."""
    low = uri.strip().lower()
    if low.startswith("data:"):
        return "data"
    if low.startswith(("http:", "https:", "ftp:", "//", "ws:", "wss:")):
        return "remote"
    if low.startswith("file:"):
        return "outside"
    head = uri.split("/", 1)[0]
    if ":" in head:
        scheme = head.split(":", 1)[0]
        if len(scheme) == 1 and scheme.isalpha():
            return "outside"  # C:\ drive path
        if not scheme or not (scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme)):
            return "invalid"
        return "remote"  # any other scheme: never fetched
    path = unquote(uri)
    if "\x00" in path:
        return "invalid"
    if path.startswith(("/", "\\")) or os.path.isabs(path):
        return "outside"
    parts = path.replace("\\", "/").split("/")
    depth = 0
    for part in parts:
        if part == "..":
            depth -= 1
            if depth < 0:
                return "outside"
        elif part not in ("", "."):
            depth += 1
    return "relative"


def _decode_data_uri(uri: str, max_bytes: int) -> tuple[bytes | None, str | None, str]:
    """(bytes or None, mime, problem)."""
    header, sep, payload = uri.partition(",")
    if not sep:
        return None, None, "data URI has no ',' separator"
    mime = header[5:].split(";")[0] or None
    if len(payload) * 3 // 4 > max_bytes:
        return None, mime, f"data URI holds about {len(payload) * 3 // 4 / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB cap"
    try:
        data = base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote(payload).encode("latin-1")
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        return None, mime, f"data URI payload is not valid base64 ({exc})"
    return data, mime, ""


class _Resources:
    """Reads URIs for one document: never outside the folder, never over the network, within a byte budget."""

    def __init__(self, doc: GltfDocument, source: SourceFile, limits: ReadLimits) -> None:
        self.doc = doc
        self.folder = source.folder
        self.budget = limits.max_file_bytes
        self.max_data_uri = min(MAX_DATA_URI_BYTES, limits.max_file_bytes)

    def read(self, uri: Any, pointer: str) -> tuple[bytes | None, str, str | None]:
        """(bytes or None, kind, mime-from-data-uri)."""
        doc = self.doc
        if not isinstance(uri, str) or not uri:
            doc.add("INVALID_URI", ERROR, pointer, f"URI {uri!r} is not a string")
            return None, "invalid", None
        kind = classify_uri(uri)
        shown = uri if len(uri) < 80 else uri[:60] + "..."
        if kind == "data":
            data, mime, problem = _decode_data_uri(uri, self.max_data_uri)
            if problem:
                code = "data_uri_too_large" if "cap" in problem else "INVALID_URI"
                doc.add(code, ERROR, pointer, problem)
            if doc.format == "glb":
                doc.add("DATA_URI_GLB", WARNING, pointer, "data URI inside a GLB (the BIN chunk should hold the data)")
            return data, kind, mime
        if kind == "remote":
            doc.add("remote_uri", ERROR, pointer, f"remote URI '{shown}' (never fetched: a model file must not trigger network access)")
            return None, kind, None
        if kind == "outside":
            doc.add("uri_outside_folder", ERROR, pointer, f"URI '{shown}' points outside the model's folder (never read)")
            return None, kind, None
        if kind == "invalid":
            doc.add("INVALID_URI", ERROR, pointer, f"invalid URI '{shown}'")
            return None, kind, None
        doc.add("external_uri", ERROR, pointer, f"external file '{shown}': a storefront asset must be one self-contained GLB")
        if self.folder is None:
            doc.add("IO_ERROR", ERROR, pointer, f"'{shown}' cannot be resolved: the model was given as bytes, without a folder")
            return None, "missing", None
        try:
            base = self.folder.resolve(strict=True)
            target = (base / unquote(uri)).resolve(strict=True)
        except (OSError, RuntimeError):
            doc.add("IO_ERROR", ERROR, pointer, f"file '{shown}' does not exist beside the model")
            return None, "missing", None
        if base != target and base not in target.parents:
            doc.add("uri_outside_folder", ERROR, pointer, f"'{shown}' resolves (through a link) outside the model's folder (never read)")
            return None, "outside", None
        try:
            size = target.stat().st_size
            if not target.is_file():
                raise IsADirectoryError(str(target))
            if size > self.budget:
                doc.add("IO_ERROR", ERROR, pointer, f"'{shown}' is {size / 1e6:.0f} MB, over the remaining read budget")
                return None, "missing", None
            with target.open("rb") as fh:
                data = fh.read(self.budget + 1)
        except OSError as exc:
            doc.add("IO_ERROR", ERROR, pointer, f"'{shown}' cannot be read ({exc.strerror or exc})")
            return None, "missing", None
        self.budget -= len(data)
        doc.external_files.append(uri)
        return data, "file", None


# --- reading ----------------------------------------------------------------------------------


def read_glb(source: SourceFile, limits: ReadLimits) -> Loaded:
    where = source.path or source.name
    doc_json, bin_chunk, issues = parse_glb(source.data, where)
    return _load(source, limits, doc_json, "glb", bin_chunk, issues)


def read_gltf(source: SourceFile, limits: ReadLimits) -> Loaded:
    where = source.path or source.name
    if source.data[:4] == GLB_MAGIC:
        return read_glb(source, limits)
    return _load(source, limits, parse_json(source.data, where), "gltf", None, [])


def read_document(source: SourceFile, limits: ReadLimits | None = None) -> GltfDocument:
    """Parse and check a glTF/GLB without building a scene (for tools and tests)."""
    limits = limits or ReadLimits()
    where = source.path or source.name
    if source.data[:4] == GLB_MAGIC:
        doc_json, bin_chunk, issues = parse_glb(source.data, where)
        fmt = "glb"
    else:
        doc_json, bin_chunk, issues, fmt = parse_json(source.data, where), None, [], "gltf"
    doc = _document(source, limits, doc_json, fmt, bin_chunk, issues)
    _build(doc, limits, where, build_scene=False)
    return doc


def _document(source: SourceFile, limits: ReadLimits, doc_json: dict[str, Any], fmt: str, bin_chunk: memoryview | None,
              issues: list[Issue]) -> GltfDocument:
    doc = GltfDocument(json=doc_json, format=fmt, name=source.name, file_bytes=len(source.data), issues=list(issues))
    doc._limits_value = limits  # type: ignore[attr-defined]
    for key in ("buffers", "bufferViews", "accessors", "meshes", "nodes", "scenes", "materials", "textures", "images", "samplers"):
        if key in doc_json and not (isinstance(doc_json[key], list) and all(isinstance(x, dict) for x in doc_json[key])):
            doc.add("TYPE_MISMATCH", ERROR, f"/{key}", f"'{key}' is not an array of objects; ignored")
            doc_json[key] = []
    _check_extensions(doc)
    resources = _Resources(doc, source, limits)
    for i, buf in enumerate(doc.items("buffers")):
        pointer = f"/buffers/{i}"
        length = buf.get("byteLength")
        data: bytes | None = None
        if "uri" in buf:
            data, _, _ = resources.read(buf["uri"], f"{pointer}/uri")
        elif i == 0 and fmt == "glb" and bin_chunk is not None:
            data = bin_chunk
            if isinstance(length, int) and len(bin_chunk) > length + 3:
                doc.add("BUFFER_GLB_CHUNK_TOO_BIG", WARNING, pointer, f"BIN chunk has {len(bin_chunk) - length} bytes beyond byteLength")
        elif _is_meshopt_fallback(buf):
            data = None
        else:
            doc.add("BUFFER_MISSING_GLB_DATA", ERROR, pointer, "buffer has no uri and no GLB BIN chunk to refer to")
        if data is not None and isinstance(length, int):
            if len(data) < length:
                doc.add("BUFFER_BYTE_LENGTH_MISMATCH", ERROR, pointer, f"buffer holds {len(data)} bytes, byteLength declares {length}",
                        measured=len(data), threshold=length)
            else:
                data = data[:length] if len(data) > length else data
        doc.buffers.append(data)
    for i, view in enumerate(doc.items("bufferViews")):
        pointer = f"/bufferViews/{i}"
        bi, off, length = view.get("buffer"), view.get("byteOffset", 0), view.get("byteLength")
        buffers = doc.items("buffers")
        if not (isinstance(bi, int) and 0 <= bi < len(buffers)):
            doc.add("UNRESOLVED_REFERENCE", ERROR, f"{pointer}/buffer", f"buffer {bi!r} does not exist")
            continue
        declared = buffers[bi].get("byteLength")
        if isinstance(off, int) and isinstance(length, int) and isinstance(declared, int) and off + length > declared:
            doc.add("BUFFER_VIEW_TOO_LONG", ERROR, pointer, f"bufferView ends at byte {off + length}, its buffer has {declared}",
                    measured=off + length, threshold=declared)
        stride = view.get("byteStride")
        if stride is not None and (not isinstance(stride, int) or stride < 4 or stride > 252 or stride % 4):
            doc.add("BUFFER_VIEW_INVALID_BYTE_STRIDE", ERROR, f"{pointer}/byteStride", f"byteStride {stride!r} is not a multiple of 4 in 4..252")
    _images(doc, source, limits, resources)
    return doc


def _is_meshopt_fallback(buf: dict[str, Any]) -> bool:
    ext = buf.get("extensions")
    return isinstance(ext, dict) and any(isinstance(ext.get(k), dict) and ext[k].get("fallback") for k in MESHOPT)


def _check_extensions(doc: GltfDocument) -> None:
    for key in ("extensionsUsed", "extensionsRequired"):
        value = doc.json.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            doc.add("TYPE_MISMATCH", ERROR, f"/{key}", f"{key} must be an array of strings, not {type(value).__name__}")
    used, required = set(doc.extensions_used), doc.extensions_required
    supported = supported_extensions()
    for i, name in enumerate(required):
        if name not in used:
            doc.add("NOT_IN_LIST", ERROR, f"/extensionsRequired/{i}", f"required extension {name} is not in extensionsUsed")
        if name not in supported:
            hint = {DRACO: " (install DracoPy to decode it)", **{m: " (install meshoptimizer to decode it)" for m in MESHOPT}}.get(name, "")
            doc.add("unsupported_required_extension", ERROR, f"/extensionsRequired/{i}",
                    f"required extension {name} is not supported{hint}; viewers without it cannot show the model")
    found: set[str] = set()
    for key in ("materials", "meshes", "textures", "bufferViews", "buffers", "nodes", "images", "accessors"):
        for obj in doc.items(key):
            found.update(k for k in (obj.get("extensions") or {}) if isinstance(obj.get("extensions"), dict))
            if key == "meshes":
                for prim in obj.get("primitives", []) if isinstance(obj.get("primitives"), list) else []:
                    if isinstance(prim, dict) and isinstance(prim.get("extensions"), dict):
                        found.update(prim["extensions"])
    if isinstance(doc.json.get("extensions"), dict):
        found.update(doc.json["extensions"])
    for name in sorted(found - used):
        doc.add("UNDECLARED_EXTENSION", ERROR, "/extensionsUsed", f"extension {name} is used but not declared in extensionsUsed")
    for name in sorted(used & {DRACO, *MESHOPT}):
        if name in supported:
            doc.add("compressed_input", INFO, "/extensionsUsed", f"{name}: payloads decoded and validated by meshforge")


def _load(source: SourceFile, limits: ReadLimits, doc_json: dict[str, Any], fmt: str, bin_chunk: memoryview | None,
          issues: list[Issue]) -> Loaded:
    where = source.path or source.name
    doc = _document(source, limits, doc_json, fmt, bin_chunk, issues)
    scene = _build(doc, limits, where, build_scene=True)
    doc._scene_ref = weakref.ref(scene)
    return Loaded(scene=scene, format=fmt, units=Units("m", "+Y"), document=doc)


# --- primitives, nodes, scene -------------------------------------------------------------------


def _strip(n: int) -> np.ndarray:
    # triangle i is (i, i+1, i+2), odd ones (i+1, i, i+2) to keep the winding: written in place, as
    # boolean-mask indexing made three more copies of a 20M-triangle strip
    tri = np.arange(max(n - 2, 0), dtype=np.int64)[:, None] + np.arange(3, dtype=np.int64)
    tri[1::2, :2] = tri[1::2, 1::-1]
    return tri


def _fan(n: int) -> np.ndarray:
    i = np.arange(1, max(n - 1, 1))
    return np.stack([np.zeros_like(i), i, i + 1], axis=1) if n >= 3 else np.zeros((0, 3), dtype=np.int64)


# glTF 2.0 3.7.2.1: accessor types per attribute semantic, and component types (float, or normalized
# unsigned byte/short where the table allows) unless KHR_mesh_quantization widens them
_FLOAT, _UBYTE, _USHORT = 5126, 5121, 5123
_ATTRIBUTE_FORMATS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "POSITION": (("VEC3",), (_FLOAT,)),
    "NORMAL": (("VEC3",), (_FLOAT,)),
    "TANGENT": (("VEC4",), (_FLOAT,)),
    "TEXCOORD": (("VEC2",), (_FLOAT, _UBYTE, _USHORT)),
    "COLOR": (("VEC3", "VEC4"), (_FLOAT, _UBYTE, _USHORT)),
    "JOINTS": (("VEC4",), (_UBYTE, _USHORT)),
    "WEIGHTS": (("VEC4",), (_FLOAT, _UBYTE, _USHORT)),
}


def _attribute_format_ok(doc: GltfDocument, semantic: str, accessor: Any, pointer: str) -> bool:
    """False (and an error, as the Khronos validator's) when an attribute's accessor has the wrong
    type: a SCALAR COLOR_0 reached trimesh, which dropped it with a printed complaint."""
    base = semantic.split("_", 1)[0] if semantic.split("_", 1)[-1].isdigit() else semantic
    formats = _ATTRIBUTE_FORMATS.get(base)
    if formats is None or not isinstance(accessor, dict):
        return True  # application-specific (_FOO) semantics: any format
    types, components = formats
    ctype = accessor.get("componentType")
    quantized = "KHR_mesh_quantization" in doc.extensions_used
    if accessor.get("type") in types and (quantized or ctype in components):
        return True
    doc.add("MESH_PRIMITIVE_ATTRIBUTES_ACCESSOR_INVALID_FORMAT", ERROR, pointer,
            f"{semantic} accessor is {accessor.get('type')}/{ctype}; glTF allows {' or '.join(types)} of componentType "
            f"{', '.join(map(str, components))}")
    return False


def _primitive(doc: GltfDocument, mi: int, pi: int, prim: dict[str, Any]) -> dict[str, Any] | None:
    """Decode and check one primitive: {'vertices','faces','normals','uv','material','tangents'} or None."""
    pointer = f"/meshes/{mi}/primitives/{pi}"
    attrs = prim.get("attributes")
    if not isinstance(attrs, dict):
        doc.add("UNDEFINED_PROPERTY", ERROR, pointer, "primitive has no attributes")
        return None
    ext = prim.get("extensions") if isinstance(prim.get("extensions"), dict) else {}
    if DRACO in ext and isinstance(ext[DRACO], dict):
        if not _decode_draco(doc, mi, pi, prim, ext[DRACO]):
            return None
    accessors = doc.items("accessors")
    for semantic, ai in attrs.items():
        if not (isinstance(ai, int) and 0 <= ai < len(accessors)):
            doc.add("UNRESOLVED_REFERENCE", ERROR, f"{pointer}/attributes/{semantic}", f"accessor {ai!r} does not exist")
            return None
    if "POSITION" not in attrs:
        doc.add("MESH_PRIMITIVE_NO_POSITION", WARNING, pointer, "primitive has no POSITION attribute")
        return None
    mode = prim.get("mode", 4)
    if mode not in (4, 5, 6):
        doc.add("non_triangle_primitive", INFO, f"{pointer}/mode", f"mode {mode} (points/lines) is not drawn as a surface; skipped")
        return None
    pos_index = attrs["POSITION"]
    bad = [sem for sem, ai in attrs.items() if not _attribute_format_ok(doc, sem, accessors[ai], f"{pointer}/attributes/{sem}")]
    if "POSITION" in bad:
        return None
    positions = doc.accessor(pos_index)
    if positions is None or positions.shape[1] != 3:
        return None
    apointer = f"/accessors/{pos_index}"
    if doc.first_check(pos_index, "POSITION"):
        doc.issues.extend(checks.check_bounds(positions, _bounds_as_decoded(accessors[pos_index]), apointer,
                                              require=pos_index not in doc._draco, tolerance=_bounds_tolerance(doc, pos_index, positions)))
        doc.issues.extend(checks.check_float_values(positions, apointer))
    count = len(positions)
    decoded: dict[str, np.ndarray] = {"POSITION": positions}
    for semantic, ai in attrs.items():
        if semantic == "POSITION" or semantic in bad:
            continue
        data = doc.accessor(ai)
        if data is None:
            continue
        apointer = f"/accessors/{ai}"
        if len(data) != count:
            doc.add("MESH_PRIMITIVE_UNEQUAL_ACCESSOR_COUNT", ERROR, f"{pointer}/attributes/{semantic}",
                    f"{semantic} has {len(data)} elements, POSITION {count}", measured=len(data), threshold=count)
            continue
        decoded[semantic] = data
        if not doc.first_check(ai, semantic):
            continue
        if semantic in ("NORMAL", "TANGENT"):
            doc.issues.extend(checks.check_float_values(data, apointer))
            doc.issues.extend(checks.check_unit_vectors(data, apointer, semantic=semantic))
        elif semantic.startswith("COLOR_"):
            doc.issues.extend(checks.check_clamped(data, apointer))
        elif semantic.startswith("TEXCOORD_"):
            doc.issues.extend(checks.check_float_values(data, apointer))
        if "min" in accessors[ai] or "max" in accessors[ai]:
            doc.issues.extend(checks.check_bounds(data, _bounds_as_decoded(accessors[ai]), apointer, require=False,
                                                  tolerance=_bounds_tolerance(doc, ai, data)))
    if "NORMAL" not in attrs:
        doc.add("missing_normals", WARNING, pointer, "primitive has no NORMAL attribute (viewers compute flat or smooth normals themselves)")
    # indices
    ii = prim.get("indices")
    if ii is not None:
        if not (isinstance(ii, int) and 0 <= ii < len(accessors)):
            doc.add("UNRESOLVED_REFERENCE", ERROR, f"{pointer}/indices", f"accessor {ii!r} does not exist")
            return None
        idx = doc.accessor(ii)
        if idx is None:
            return None
        ctype = accessors[ii].get("componentType")
        if ctype not in (5121, 5123, 5125) and ii not in doc._draco:
            doc.add("MESH_PRIMITIVE_INDICES_ACCESSOR_INVALID_FORMAT", ERROR, f"{pointer}/indices", f"index componentType {ctype} is not unsigned")
            return None
        csize = COMPONENTS.get(ctype, (None, 4))[1]
        # checked in the file's own integer type; converted once to the int64 trimesh keeps
        idx_issues, ok = checks.check_indices(idx.reshape(-1), count, csize, f"/accessors/{ii}", triangles=mode == 4)
        doc.issues.extend(idx_issues)
        flat = idx.reshape(-1).astype(np.int64)
        if mode == 4:
            if len(flat) % 3:
                doc.add("MESH_PRIMITIVE_INCOMPATIBLE_MODE", WARNING, pointer, f"{len(flat)} indices is not a multiple of 3 for TRIANGLES")
            faces = flat[: (len(flat) // 3) * 3].reshape(-1, 3)
            faces = faces if ok.all() else faces[ok]
        else:
            tri = _strip(len(flat)) if mode == 5 else _fan(len(flat))
            faces = flat[tri]
            faces = faces[ok[tri].all(axis=1)]
    else:
        if mode == 4:
            if count % 3:
                doc.add("MESH_PRIMITIVE_INCOMPATIBLE_MODE", WARNING, pointer, f"{count} vertices is not a multiple of 3 for TRIANGLES")
            faces = np.arange((count // 3) * 3, dtype=np.int64).reshape(-1, 3)
        else:
            faces = _strip(count) if mode == 5 else _fan(count)
    # material texcoords
    material = prim.get("material")
    materials = doc.items("materials")
    if material is not None and not (isinstance(material, int) and 0 <= material < len(materials)):
        doc.add("UNRESOLVED_REFERENCE", ERROR, f"{pointer}/material", f"material {material!r} does not exist")
        material = None
    if material is not None:
        for tex_key, tex in _material_textures(materials[material]):
            tc = tex.get("texCoord", 0)
            if f"TEXCOORD_{tc}" not in attrs:
                doc.add("MESH_PRIMITIVE_TOO_FEW_TEXCOORDS", ERROR, pointer,
                        f"material {material} samples TEXCOORD_{tc} for {tex_key}, which the primitive lacks")
                break
        if isinstance(materials[material].get("normalTexture"), dict) and "TANGENT" not in attrs:
            doc.add("MESH_PRIMITIVE_GENERATED_TANGENT_SPACE", WARNING, pointer,
                    "normal-mapped primitive has no TANGENT attribute (viewers generate tangents, results can differ)")
    if "TANGENT" in attrs:
        doc.tangent_primitives += 1
    return {"vertices": positions, "faces": faces, "normals": decoded.get("NORMAL"), "uv": decoded.get("TEXCOORD_0"),
            "colors": decoded.get("COLOR_0"), "material": material, "tangents": decoded.get("TANGENT"), "position": pos_index}


def _bounds_tolerance(doc: GltfDocument, index: int, data: np.ndarray) -> float:
    """0 for plain data; 1 % of the extent for Draco-decoded (quantized) data; inf for data-less accessors."""
    acc = doc.items("accessors")[index]
    if index in doc._draco:
        finite = data[np.isfinite(data).all(axis=1)] if data.dtype.kind == "f" else data
        return 0.01 * float(np.ptp(finite, axis=0).max()) if len(finite) else 0.0
    if acc.get("bufferView") is None and not isinstance(acc.get("sparse"), dict):
        return float("inf")  # all zeros by definition: nothing stored to compare (the validator skips these too)
    return 0.0


def _material_textures(mat: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    pbr = mat.get("pbrMetallicRoughness") if isinstance(mat.get("pbrMetallicRoughness"), dict) else {}
    for key, holder in (("baseColorTexture", pbr), ("metallicRoughnessTexture", pbr), ("normalTexture", mat),
                        ("occlusionTexture", mat), ("emissiveTexture", mat)):
        tex = holder.get(key)
        if isinstance(tex, dict):
            out.append((key, tex))
    return out


def _walk_nodes(doc: GltfDocument, limits: ReadLimits) -> list[tuple[int, int | None, np.ndarray]]:
    """(node, parent, world transform) for nodes reachable from the scene roots; cycles and depth checked."""
    nodes = doc.items("nodes")
    if len(nodes) > limits.max_nodes:
        raise InputError(doc.name, f"{len(nodes)} nodes, over the limit of {limits.max_nodes} (limits.max_nodes)", code="input.too_complex")
    parents: dict[int, int] = {}
    for i, node in enumerate(nodes):
        doc.issues.extend(checks.check_node_transform(node, f"/nodes/{i}"))
        children = node.get("children", [])
        if not isinstance(children, list):
            continue
        for c in children:
            if not (isinstance(c, int) and 0 <= c < len(nodes)):
                doc.add("UNRESOLVED_REFERENCE", ERROR, f"/nodes/{i}/children", f"child {c!r} does not exist")
            elif c in parents:
                doc.add("NODE_PARENT_OVERRIDE", ERROR, f"/nodes/{i}/children", f"node {c} already has parent {parents[c]}")
            else:
                parents[c] = i
    # cycles: iterative depth-first search over every child edge (white/grey/black colouring)
    looped: set[int] = set()
    colour = np.zeros(len(nodes), dtype=np.int8)
    kids = [[c for c in (node.get("children") or []) if isinstance(c, int) and 0 <= c < len(nodes)]
            if isinstance(node.get("children"), list) else [] for node in nodes]
    for start in range(len(nodes)):
        if colour[start]:
            continue
        colour[start] = 1
        stack = [(start, iter(kids[start]))]
        path = [start]
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[n] = 2
                stack.pop()
                path.pop()
            elif colour[nxt] == 1:
                cycle = path[path.index(nxt):]
                if not looped.issuperset(cycle):
                    doc.add("NODE_LOOP", ERROR, f"/nodes/{nxt}", f"node hierarchy has a cycle through nodes {cycle[:10]}",
                            count=len(cycle), samples=cycle)
                looped.update(cycle)
            elif colour[nxt] == 0:
                colour[nxt] = 1
                stack.append((nxt, iter(kids[nxt])))
                path.append(nxt)
    scenes = doc.items("scenes")
    scene_index = doc.json.get("scene", 0 if scenes else None)
    roots: list[int] = []
    if scenes:
        if not (isinstance(scene_index, int) and 0 <= scene_index < len(scenes)):
            doc.add("UNRESOLVED_REFERENCE", ERROR, "/scene", f"scene {scene_index!r} does not exist")
            scene_index = 0
        for i, scene in enumerate(scenes):
            for r in scene.get("nodes", []) if isinstance(scene.get("nodes"), list) else []:
                if not (isinstance(r, int) and 0 <= r < len(nodes)):
                    doc.add("UNRESOLVED_REFERENCE", ERROR, f"/scenes/{i}/nodes", f"node {r!r} does not exist")
                elif r in parents:
                    doc.add("SCENE_NON_ROOT_NODE", ERROR, f"/scenes/{i}/nodes", f"node {r} is not a root (its parent is {parents[r]})")
                elif i == scene_index:
                    roots.append(r)
    else:
        roots = [i for i in range(len(nodes)) if i not in parents and i not in looped]
    out: list[tuple[int, int | None, np.ndarray]] = []
    stack: list[tuple[int, int | None, np.ndarray, int]] = [(r, None, np.eye(4), 1) for r in reversed(roots)]
    seen: set[int] = set()
    too_deep = False
    while stack:
        n, parent, parent_tf, depth = stack.pop()
        if n in seen or n in looped:
            continue
        seen.add(n)
        if depth > limits.max_depth:
            too_deep = True
            continue
        tf = parent_tf @ _local_transform(nodes[n])
        out.append((n, parent, tf))
        children = nodes[n].get("children", [])
        for c in reversed(children if isinstance(children, list) else []):
            if isinstance(c, int) and 0 <= c < len(nodes) and parents.get(c) == n:
                stack.append((c, n, tf, depth + 1))
    if too_deep:
        doc.add("node_depth", ERROR, "/nodes", f"node hierarchy is deeper than {limits.max_depth} levels (limits.max_depth); deeper nodes skipped",
                threshold=limits.max_depth)
    return out


def _local_transform(node: dict[str, Any]) -> np.ndarray:
    try:
        if "matrix" in node:
            m = np.asarray(node["matrix"], dtype=np.float64).reshape(4, 4).T
            return m if np.isfinite(m).all() else np.eye(4)
        t = np.asarray(node.get("translation", (0, 0, 0)), dtype=np.float64).reshape(3)
        q = np.asarray(node.get("rotation", (0, 0, 0, 1)), dtype=np.float64).reshape(4)
        s = np.asarray(node.get("scale", (1, 1, 1)), dtype=np.float64).reshape(3)
    except (TypeError, ValueError):
        return np.eye(4)
    if not (np.isfinite(t).all() and np.isfinite(q).all() and np.isfinite(s).all()):
        return np.eye(4)
    norm = np.linalg.norm(q)
    x, y, z, w = q / norm if norm > 0 else (0.0, 0.0, 0.0, 1.0)
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    m = np.eye(4)
    m[:3, :3] = r * s[None, :]
    m[:3, 3] = t
    return m


def _images(doc: GltfDocument, source: SourceFile, limits: ReadLimits, resources: _Resources | None) -> None:
    from meshforge.io.images import image_info, open_image

    for i, img in enumerate(doc.items("images")):
        pointer = f"/images/{i}"
        ref = ImageRef(index=i, declared_mime=img.get("mimeType") if isinstance(img.get("mimeType"), str) else None)
        doc.images.append(ref)
        if "uri" in img and resources is not None:
            ref.data, ref.uri_kind, mime = resources.read(img["uri"], f"{pointer}/uri")
            if ref.uri_kind == "data":
                ref.declared_mime = ref.declared_mime or mime
                doc.add("data_uri_image", WARNING, f"{pointer}/uri", "image embedded as a data URI (storefronts such as Amazon reject these)")
        elif "bufferView" in img:
            raw = doc.view_bytes(img["bufferView"])
            ref.uri_kind = "buffer_view"
            ref.data = bytes(raw) if raw is not None else None
            if ref.declared_mime is None:
                doc.add("UNDEFINED_PROPERTY", ERROR, pointer, "image in a bufferView needs a mimeType")
        else:
            ref.uri_kind = "missing"
            doc.add("UNDEFINED_PROPERTY", ERROR, pointer, "image has neither uri nor bufferView")
        if ref.data is None:
            continue
        name = f"{source.name}{pointer}"
        try:
            info = image_info(ref.data, name)
        except InputError as exc:
            if exc.code == "input.image_too_large":
                doc.add("image_too_large", ERROR, pointer, exc.reason, threshold=limits.max_image_pixels)
                continue
            looks = ref.data[:8] == b"\x89PNG\r\n\x1a\n" or ref.data[:3] == b"\xff\xd8\xff"
            doc.add("IMAGE_UNEXPECTED_EOS" if looks else "IMAGE_UNRECOGNIZED_FORMAT", ERROR, pointer,
                    "image data is truncated" if looks else "image data is not a recognised image format")
            continue
        ref.format, ref.mode, ref.width, ref.height = info.format, info.mode, info.width, info.height
        actual = IMAGE_MIMES.get(info.format, f"image/{info.format.lower()}")
        if ref.declared_mime and ref.declared_mime != actual:
            doc.add("IMAGE_MIME_TYPE_INVALID", ERROR, pointer, f"image is {actual} but mimeType says {ref.declared_mime}",
                    measured=actual, threshold=ref.declared_mime)
        if actual not in ("image/png", "image/jpeg"):
            ext = {"image/webp": "EXT_texture_webp"}.get(actual)
            if ext is None or ext not in doc.extensions_used:
                doc.add("IMAGE_NON_ENABLED_MIME_TYPE", ERROR, pointer, f"{actual} images are not core glTF")
        if info.mode in ("CMYK", "I;16", "I;16B", "I;16L", "I", "F", "RGBA;16B") or info.mode.startswith("I;16"):
            doc.add("image_unsupported_mode", WARNING, pointer,
                    f"image mode {info.mode} ({'CMYK' if info.mode == 'CMYK' else '16-bit/float'}): web viewers expect 8-bit sRGB")
        try:
            image = open_image(ref.data, name=name, max_pixels=limits.max_image_pixels)
        except InputError as exc:
            code = "image_too_large" if exc.code == "input.image_too_large" else "IMAGE_UNEXPECTED_EOS"
            doc.add(code, ERROR, pointer, exc.reason, measured=f"{info.width}x{info.height}", threshold=limits.max_image_pixels)
            continue
        if image.mode not in ("RGB", "RGBA", "L", "LA"):
            try:
                if image.mode.startswith("I;16") or image.mode == "I":
                    image = image.point(lambda v: v / 257).convert("L")
                else:
                    image = image.convert("RGBA" if "A" in image.mode else "RGB")
            except Exception:  # noqa: BLE001 - an odd mode Pillow cannot convert: keep the data, skip the texture
                image = None
        if image is not None:
            image.format = info.format
        ref.image = image


def _material(doc: GltfDocument, index: int, cache: dict[int, Any]) -> Any:
    if index in cache:
        return cache[index]
    from trimesh.visual.material import PBRMaterial

    mat = doc.items("materials")[index]
    pbr = mat.get("pbrMetallicRoughness") if isinstance(mat.get("pbrMetallicRoughness"), dict) else {}

    def texture(ref: Any) -> Any:
        if not isinstance(ref, dict):
            return None
        ti = ref.get("index")
        textures = doc.items("textures")
        if not (isinstance(ti, int) and 0 <= ti < len(textures)):
            return None
        src = textures[ti].get("source")
        if src is None and isinstance(textures[ti].get("extensions"), dict):
            src = next((e.get("source") for e in textures[ti]["extensions"].values() if isinstance(e, dict) and "source" in e), None)
        if isinstance(src, int) and 0 <= src < len(doc.images):
            return doc.images[src].image
        return None

    def factor(value: Any, size: int) -> Any:
        try:
            arr = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            return None
        return arr if arr.shape[0] == size and np.isfinite(arr).all() else None

    def number(value: Any) -> float | None:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value) else None

    base = factor(pbr.get("baseColorFactor", (1, 1, 1, 1)), 4)
    material = PBRMaterial(
        name=str(mat.get("name") or f"material_{index}"),
        baseColorFactor=np.clip(base, 0, 1) if base is not None else None,
        metallicFactor=min(max(number(pbr.get("metallicFactor", 1.0)) or 0.0, 0.0), 1.0),
        roughnessFactor=min(max(number(pbr.get("roughnessFactor", 1.0)) or 0.0, 0.0), 1.0),
        emissiveFactor=factor(mat.get("emissiveFactor"), 3) if "emissiveFactor" in mat else None,
        baseColorTexture=texture(pbr.get("baseColorTexture")),
        metallicRoughnessTexture=texture(pbr.get("metallicRoughnessTexture")),
        normalTexture=texture(mat.get("normalTexture")),
        occlusionTexture=texture(mat.get("occlusionTexture")),
        emissiveTexture=texture(mat.get("emissiveTexture")),
        doubleSided=bool(mat.get("doubleSided", False)),
        alphaMode=mat.get("alphaMode") if mat.get("alphaMode") in ("OPAQUE", "MASK", "BLEND") else None,
        alphaCutoff=number(mat.get("alphaCutoff")),
    )
    cache[index] = material
    return material


def _build(doc: GltfDocument, limits: ReadLimits, where: Any, *, build_scene: bool) -> Any:
    meshes = doc.items("meshes")
    doc.primitive_count = sum(len(m.get("primitives", [])) if isinstance(m.get("primitives"), list) else 0 for m in meshes)
    if doc.primitive_count > limits.max_primitives:
        raise InputError(where, f"{doc.primitive_count} primitives, over the limit of {limits.max_primitives} (limits.max_primitives)",
                         code="input.too_complex")
    walked = _walk_nodes(doc, limits)
    _check_claimed_triangles(doc, limits, where, walked)
    built: dict[tuple[int, int], dict[str, Any] | None] = {}
    # every mesh is decoded and checked once, used or not (the validator checks unused data too)
    for mi, mesh in enumerate(meshes):
        prims = mesh.get("primitives")
        if not isinstance(prims, list):
            doc.add("TYPE_MISMATCH", ERROR, f"/meshes/{mi}/primitives", "primitives is not an array")
            continue
        for pi, prim in enumerate(prims):
            built[(mi, pi)] = _primitive(doc, mi, pi, prim) if isinstance(prim, dict) else None
    # accessors no primitive used (the validator checks them too): bounds and float values. Decoded
    # without caching: nothing reads them again, so each (e.g. a sparse morph target) is freed once checked.
    for ai, acc in enumerate(doc.items("accessors")):
        if ai in doc._accessors or (acc.get("bufferView") is None and not isinstance(acc.get("sparse"), dict)):
            continue
        if acc.get("componentType") == 5126 or "min" in acc or "max" in acc:
            data = doc._decode_accessor(ai, cache=False)
            if data is not None:
                doc.issues.extend(checks.check_float_values(data, f"/accessors/{ai}"))
                if "min" in acc or "max" in acc:
                    doc.issues.extend(checks.check_bounds(data, _bounds_as_decoded(acc), f"/accessors/{ai}", require=False))
    # triangles as decoded (Draco payloads can differ from their accessors' counts), before the scene is built
    tri_total = 0
    draw_calls = 0
    per_mesh: dict[int, tuple[int, int]] = {}
    for (m, _p), prim in built.items():
        if prim is not None:
            t, d = per_mesh.get(m, (0, 0))
            per_mesh[m] = (t + len(prim["faces"]), d + 1)
    for n, _, _ in walked:
        mi = doc.items("nodes")[n].get("mesh")
        if isinstance(mi, int) and 0 <= mi < len(meshes):
            t, d = per_mesh.get(mi, (0, 0))
            tri_total += t
            draw_calls += d
        elif mi is not None:
            doc.add("UNRESOLVED_REFERENCE", ERROR, f"/nodes/{n}/mesh", f"mesh {mi!r} does not exist")
    doc.triangles, doc.draw_calls = tri_total, draw_calls
    if tri_total > limits.max_triangles:
        raise InputError(where, f"{tri_total} triangles after instancing, over the limit of {limits.max_triangles} (limits.max_triangles)",
                         code="input.too_large")
    if not build_scene:
        return None
    import trimesh  # only for the scene: read_document (checks alone) never pays its 0.4-0.7 s import
    from trimesh.visual import ColorVisuals, TextureVisuals

    mat_cache: dict[int, Any] = {}
    geometry: dict[str, Any] = {}
    geom_names: dict[tuple[int, int], str] = {}
    sharing = Counter(prim["position"] for prim in built.values() if prim is not None)
    for (mi, pi), prim in built.items():
        if prim is None or not len(prim["faces"]):
            continue
        if sharing[prim["position"]] > 1:
            prim = _compact(prim)
        kwargs: dict[str, Any] = {}
        if prim["normals"] is not None:
            kwargs["vertex_normals"] = np.asarray(prim["normals"], dtype=np.float64)
        visual = None
        if prim["material"] is not None:
            material = _material(doc, prim["material"], mat_cache)
            uv = None
            if prim["uv"] is not None:
                uv = np.array(prim["uv"], dtype=np.float64)
                uv[:, 1] = 1.0 - uv[:, 1]  # glTF's V runs down; trimesh's up (trimesh's own loader does the same)
            visual = TextureVisuals(uv=uv, material=material)
        elif prim["colors"] is not None:
            colors = np.asarray(prim["colors"], dtype=np.float64)
            visual = ColorVisuals(vertex_colors=np.clip(colors * 255 if colors.max(initial=0) <= 1.0 else colors, 0, 255).astype(np.uint8))
        mesh_obj = trimesh.Trimesh(vertices=np.asarray(prim["vertices"], dtype=np.float64), faces=prim["faces"],
                                   visual=visual, process=False, validate=False, **kwargs)
        if prim["tangents"] is not None:
            mesh_obj.vertex_attributes["tangent"] = np.asarray(prim["tangents"], dtype=np.float64)
        base = str(meshes[mi].get("name") or f"mesh_{mi}")
        name = base if len(meshes[mi].get("primitives", [])) == 1 else f"{base}_{pi}"
        while name in geometry:
            name = f"{name}_{mi}_{pi}"
        mesh_obj.metadata["name"] = name
        geometry[name] = mesh_obj
        geom_names[(mi, pi)] = name
    names_by_mesh: dict[int, list[str]] = {}
    for (m, _p), gname in geom_names.items():
        names_by_mesh.setdefault(m, []).append(gname)
    scene = trimesh.Scene(base_frame="world")
    nodes = doc.items("nodes")
    node_names: dict[int, str] = {}
    used: set[str] = {"world"}
    for n, parent, _ in walked:
        name = str(nodes[n].get("name") or f"node_{n}")
        while name in used:
            name = f"{name}_{n}"
        used.add(name)
        node_names[n] = name
        scene.graph.update(frame_from=node_names[parent] if parent is not None else "world", frame_to=name,
                           matrix=_local_transform(nodes[n]))
        mi = nodes[n].get("mesh")
        if not isinstance(mi, int):
            continue
        for gname in names_by_mesh.get(mi, ()):
            frame = f"{name}/{gname}"
            while frame in used:
                frame = f"{frame}_"
            used.add(frame)
            if gname not in scene.geometry:
                scene.geometry[gname] = geometry[gname]
            scene.graph.update(frame_from=name, frame_to=frame, matrix=np.eye(4), geometry=gname)
    if not scene.geometry:
        raise InputError(where, f"{doc.format} file holds no drawable triangles" + _worst(doc), code="input.empty")
    scene.metadata["gltf_issues"] = len(doc.issues)
    return scene


def _compact(prim: dict[str, Any]) -> dict[str, Any]:
    """``prim`` with only the vertices its faces use.

    For primitives sharing one POSITION accessor (three.js writes material groups so): each becomes
    its own trimesh with float64 copies of its vertex arrays, and 20,000 one-triangle primitives over a
    1M-vertex accessor would copy it 20,000 times. Compacted, the copies add up to at most three
    vertices per triangle, which the triangle limit bounds.
    """
    used, inverse = np.unique(prim["faces"].reshape(-1), return_inverse=True)
    out = {k: v[used] if k in ("vertices", "normals", "uv", "colors", "tangents") and v is not None else v for k, v in prim.items()}
    out["faces"] = inverse.reshape(-1, 3)
    return out


def _claimed_triangles(doc: GltfDocument, prim: Any) -> int:
    """Triangles a primitive declares, from its mode and its index (or POSITION) accessor's count alone."""
    if not isinstance(prim, dict) or prim.get("mode", 4) not in (4, 5, 6):
        return 0
    ref = prim.get("indices")
    if ref is None and isinstance(prim.get("attributes"), dict):
        ref = prim["attributes"].get("POSITION")
    accessors = doc.items("accessors")
    count = accessors[ref].get("count") if isinstance(ref, int) and 0 <= ref < len(accessors) else None
    if not isinstance(count, int) or count < 3:
        return 0
    return count // 3 if prim.get("mode", 4) == 4 else count - 2


def _check_claimed_triangles(doc: GltfDocument, limits: ReadLimits, where: Any, walked: list[tuple[int, int | None, np.ndarray]]) -> None:
    """Refuse, before any accessor is decoded, a file whose declared triangles exceed ``max_triangles``.

    Decoding gives every primitive its own int64 faces, so a few hundred bytes of JSON can demand
    gigabytes: one 120M-element accessor without a bufferView drawn as a strip, or one index
    accessor shared by 20,000 primitives. Two totals are checked: as drawn (each mesh times the
    nodes that draw it, the figure the late check reports) and as decoded (each mesh once, drawn or not).
    """
    meshes = doc.items("meshes")
    per_mesh = [sum(_claimed_triangles(doc, p) for p in m["primitives"]) if isinstance(m.get("primitives"), list) else 0
                for m in meshes]
    drawn = 0
    for n, _, _ in walked:
        mi = doc.items("nodes")[n].get("mesh")
        if isinstance(mi, int) and 0 <= mi < len(meshes):
            drawn += per_mesh[mi]
    if drawn > limits.max_triangles:
        raise InputError(where, f"{drawn} triangles after instancing, over the limit of {limits.max_triangles} (limits.max_triangles)",
                         code="input.too_large")
    if sum(per_mesh) > limits.max_triangles:
        raise InputError(where, f"{sum(per_mesh)} triangles in the file's meshes (drawn or not), over the limit of "
                         f"{limits.max_triangles} (limits.max_triangles)", code="input.too_large")


def _worst(doc: GltfDocument) -> str:
    errors = sorted({i.code for i in doc.issues if i.severity == ERROR})
    return f" (structural errors: {', '.join(errors[:8])})" if errors else ""
