"""``gltf.structure``: Khronos-equivalent structural validation of a glTF/GLB, plus storefront container rules.

The reader (:mod:`meshforge.io.gltf`) checks every range, URI and accessor while decoding, once, and
keeps the issues on the document; this step turns them into findings (one per code, with the count
and the first JSON pointers). Codes are the Khronos glTF-Validator codes lowercased
(``ACCESSOR_MAX_MISMATCH`` -> ``gltf.accessor_max_mismatch``) with Khronos severities, plus
meshforge's own container codes (external/remote URIs, compressed geometry, missing normals).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.params import field
from meshforge.types import Finding, Severity, ValidateStep

# Khronos glTF-Validator codes this reader reproduces (lowercased), then meshforge's own.
KHRONOS_CODES = (
    "accessor_element_out_of_max_bound", "accessor_element_out_of_min_bound", "accessor_index_oob",
    "accessor_index_primitive_restart", "accessor_index_triangle_degenerate", "accessor_invalid_float",
    "accessor_invalid_sign", "accessor_max_mismatch", "accessor_min_mismatch", "accessor_non_clamped",
    "accessor_offset_alignment", "accessor_small_bytestride", "accessor_sparse_count_out_of_range",
    "accessor_sparse_index_oob", "accessor_sparse_indices_non_increasing", "accessor_too_long",
    "accessor_total_offset_alignment", "accessor_vector3_non_unit", "array_length_not_in_list",
    "buffer_byte_length_mismatch", "buffer_glb_chunk_too_big", "buffer_missing_glb_data",
    "buffer_view_invalid_byte_stride", "buffer_view_too_long", "data_uri_glb", "glb_chunk_length_unaligned",
    "glb_duplicate_chunk", "glb_length_mismatch", "glb_unexpected_end_of_chunk_data",
    "glb_unexpected_end_of_chunk_header", "glb_unknown_chunk_type", "image_mime_type_invalid",
    "image_non_enabled_mime_type", "image_unexpected_eos", "image_unrecognized_format", "invalid_accessor_bounds_length",
    "invalid_uri", "io_error", "mesh_primitive_generated_tangent_space", "mesh_primitive_incompatible_mode",
    "mesh_primitive_indices_accessor_invalid_format", "mesh_primitive_no_position",
    "mesh_primitive_position_accessor_without_bounds", "mesh_primitive_too_few_texcoords",
    "mesh_primitive_attributes_accessor_invalid_format", "mesh_primitive_unequal_accessor_count", "node_loop", "node_matrix_trs", "node_parent_override",
    "not_in_list", "rotation_non_unit", "scene_non_root_node", "type_mismatch", "undeclared_extension",
    "undefined_property", "unresolved_reference", "value_not_in_list", "value_not_in_range",
)
OWN_CODES = (
    "external_uri", "remote_uri", "uri_outside_folder", "data_uri_image", "data_uri_too_large",
    "unsupported_required_extension", "compressed_geometry", "compressed_input", "missing_normals", "non_finite",
    "node_depth", "image_too_large", "image_unsupported_mode", "non_triangle_primitive", "accessor_not_checked",
)
CODES = tuple(f"gltf.{c}" for c in KHRONOS_CODES + OWN_CODES)
_POINTERS_SHOWN = 5


@dataclass(frozen=True, kw_only=True)
class StructureParams:
    allow_external_files: bool = field(
        False, "accept .gltf files whose buffers/images are separate files inside the model's folder "
        "(a storefront wants one self-contained GLB: REQUIREMENTS C2)")
    allow_data_uri_images: bool = field(False, "accept images embedded as data: URIs (Amazon rejects them: REQUIREMENTS 1b)")
    include_info: bool = field(True, "also report Khronos Info-level issues (degenerate triangles, decoded compression)")


def check_structure(view: AssetView, params: StructureParams, ctx: StepContext) -> Iterator[Finding]:
    from meshforge.io.gltf import GltfDocument

    doc = view.document
    if isinstance(doc, GltfDocument) and doc.built(view.scene):
        yield from _document_findings(doc, params, ctx)
        return
    # Not a glTF read by us, or a repair replaced the geometry (the exporter will write a fresh GLB):
    # only what the scene itself can show.
    import numpy as np

    mesh = view.mesh
    if len(mesh.vertices):
        bad = ~np.isfinite(np.asarray(mesh.vertices)).all(axis=1)
        if bad.any():
            yield ctx.finding("gltf.non_finite", Severity.ERROR, f"{int(bad.sum())} vertices have NaN or infinite coordinates",
                              measured=int(bad.sum()), count=int(bad.sum()), samples=np.flatnonzero(bad)[:10])


def _document_findings(doc, params: StructureParams, ctx: StepContext) -> Iterator[Finding]:
    grouped: dict[str, list] = {}
    for issue in doc.issues:
        code = issue.finding_code
        if code not in CODES:
            code = "gltf.type_mismatch" if issue.severity == "error" else "gltf.not_in_list"
        grouped.setdefault(code, []).append(issue)
    for code, issues in grouped.items():
        severity = Severity(issues[0].severity)
        if code == "gltf.external_uri" and params.allow_external_files:
            continue
        if code == "gltf.data_uri_image" and params.allow_data_uri_images:
            continue
        if severity is Severity.INFO and not params.include_info:
            continue
        first = issues[0]
        pointers = [i.pointer or "(container)" for i in issues[:_POINTERS_SHOWN]]
        more = f" (+{len(issues) - _POINTERS_SHOWN} more)" if len(issues) > _POINTERS_SHOWN else ""
        where = ", ".join(pointers) + more
        message = first.message if len(issues) == 1 else f"{len(issues)} places, first: {first.message}"
        total = sum(i.count or 1 for i in issues)
        yield ctx.finding(code, severity, f"{message} [at {where}]", measured=first.measured, threshold=first.threshold,
                          count=total, samples=first.samples)


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(
            name="gltf.structure",
            summary="glTF/GLB structure as the Khronos glTF-Validator checks it, plus self-contained storefront GLB rules",
            params=StructureParams,
            codes=CODES,
            check=check_structure,
        )
    ]
