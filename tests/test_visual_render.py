"""Thumbnails: real pixels from the numpy rasterizer, on constructed meshes and corpus files."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image

from meshforge import testing
from meshforge.builtin.export import visual as visual_plugin
from meshforge.types import Units
from meshforge.visual.raster import rasterize
from meshforge.visual.render import prepare, render, render_views

CLEAR = (255, 255, 255, 0)


def _covered(image: Image.Image) -> np.ndarray:
    return np.asarray(image)[:, :, 3] > 127


def _bbox(mask: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(mask)
    return xs.max() - xs.min() + 1, ys.max() - ys.min() + 1


def _step(name: str):
    return next(s for s in visual_plugin.meshforge_export_steps() if s.name == name)


def test_rasterizer_covers_a_triangle_by_pixel_centres_and_keeps_the_nearest():
    # A right triangle over half of an 8x8 image, and a nearer square patch in one corner.
    far = [[0, 0, 5.0], [8, 0, 5.0], [0, 8, 5.0]]
    near = [[0, 0, 1.0], [4, 0, 1.0], [0, 4, 1.0]]
    frags = rasterize(np.array([far, near]), 8, 8)
    covered = frags.face >= 0
    # Pixel centres (i + .5, j + .5) with i + j + 1 <= 8 are inside the big triangle: 36 of 64.
    assert covered.sum() == 36
    assert frags.face[0, 0] == 1 and frags.face[7, 0] == 0  # near one wins where both cover
    assert np.allclose(frags.bary.sum(axis=2)[covered], 1.0)
    # Order must not matter: the same with the faces swapped.
    swapped = rasterize(np.array([near, far]), 8, 8)
    assert swapped.face[0, 0] == 0


def test_big_and_small_triangles_tile_without_cracks():
    # A 2x2 grid of squares split into triangles of very different pixel sizes: no hole inside.
    grid = trimesh.creation.box(extents=(10, 10, 10)).subdivide().subdivide()
    image = render(prepare(grid), "front", size=200, supersample=1, background=CLEAR)
    mask = _covered(image)
    w, h = _bbox(mask)
    inner = mask[100 - h // 2 + 2 : 100 + h // 2 - 2, 100 - w // 2 + 2 : 100 + w // 2 - 2]
    assert inner.all()


def test_cube_front_silhouette_is_the_expected_square():
    image = render(prepare(testing.cube(20.0)), "front", size=256, supersample=1, background=CLEAR, margin=0.1)
    mask = _covered(image)
    # The model fills the image minus a 10 % margin on each side: 0.8^2 of the pixels.
    assert mask.mean() == pytest.approx(0.64, abs=0.01)
    assert not mask[:20].any() and not mask[-20:].any()  # the background is not the whole image
    w, h = _bbox(mask)
    assert abs(w - h) <= 1 and w == pytest.approx(0.8 * 256, abs=2)


def test_views_look_along_the_right_axes():
    part = testing.box((40.0, 20.0, 10.0))  # x 40, y 20, z 10 (Z up)
    images = render_views(part, "+Z", size=200, supersample=1, background=CLEAR)
    fw, fh = _bbox(_covered(images["front"]))
    tw, th = _bbox(_covered(images["top"]))
    assert fw / fh == pytest.approx(4.0, rel=0.05)  # front sees x by z
    assert tw / th == pytest.approx(2.0, rel=0.05)  # top sees x by y
    q = _covered(images["threequarter"])
    assert 0.2 < q.mean() < 0.8


def test_y_up_assets_are_turned_upright():
    z_up = testing.box((10.0, 10.0, 40.0))  # tall along Z
    y_up = testing.box((10.0, 40.0, 10.0))  # the same part as glTF stores it (tall along Y)
    a = _bbox(_covered(render(prepare(z_up, "+Z"), "front", size=128, supersample=1, background=CLEAR)))
    b = _bbox(_covered(render(prepare(y_up, "+Y"), "front", size=128, supersample=1, background=CLEAR)))
    assert a == b and a[1] > 3 * a[0]  # tall and thin in both


def test_shading_tells_faces_apart():
    image = np.asarray(render(prepare(testing.cube(20.0)), "threequarter", size=200, supersample=1, background=CLEAR))
    lit = image[image[:, :, 3] == 255][:, :3].astype(int).sum(axis=1)
    levels = np.unique(lit // 8)
    assert len(levels) >= 3  # three visible sides, three brightnesses


def _quad_with_quadrant_texture() -> trimesh.Trimesh:
    # A 20 x 20 square in the XZ plane facing -Y (the front camera), UV (0,0) at bottom-left.
    vertices = np.array([[-10, 0, -10], [10, 0, -10], [10, 0, 10], [-10, 0, 10]], dtype=float)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    texture = np.zeros((64, 64, 3), dtype=np.uint8)
    texture[:32, :32] = (255, 0, 0)  # image top-left: red
    texture[:32, 32:] = (0, 255, 0)  # top-right: green
    texture[32:, :32] = (0, 0, 255)  # bottom-left: blue
    texture[32:, 32:] = (255, 255, 0)  # bottom-right: yellow
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(texture))
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    return mesh


def test_texture_colour_comes_through_the_right_way_up():
    image = np.asarray(render(prepare(_quad_with_quadrant_texture()), "front", size=200, supersample=1))
    quarter = {"red": image[50, 50], "green": image[50, 150], "blue": image[150, 50], "yellow": image[150, 150]}
    assert np.argmax(quarter["red"][:3]) == 0 and quarter["red"][1] < 40
    assert np.argmax(quarter["green"][:3]) == 1 and quarter["green"][0] < 40
    assert np.argmax(quarter["blue"][:3]) == 2 and quarter["blue"][0] < 40
    assert quarter["yellow"][0] > 150 and quarter["yellow"][1] > 150 and quarter["yellow"][2] < 40


def test_face_colours_come_through():
    mesh = testing.cube(20.0)
    mesh.visual.face_colors = (200, 30, 30, 255)
    image = np.asarray(render(prepare(mesh), "front", size=64, supersample=1))
    r, g, b = image[32, 32, :3].astype(int)
    assert r > 2 * g and r > 2 * b


def test_textured_corpus_glb_keeps_its_base_colour(corpus):
    scene = trimesh.load_scene(corpus / "glb/trimesh/BoxTextured.glb")
    image = np.asarray(render(prepare(scene, "+Y"), "threequarter", size=160, supersample=1))
    rgb = image[:, :, :3].astype(int)
    green = (rgb[:, :, 1] > rgb[:, :, 0] + 40) & (rgb[:, :, 1] > rgb[:, :, 2] + 20)
    blue = (rgb[:, :, 2] > rgb[:, :, 0] + 60)
    # The CesiumLogo texture is green and blue; an untextured render would have neither.
    assert green.mean() > 0.03 and blue.mean() > 0.03


def test_non_finite_vertices_render_the_finite_part(corpus):
    scene = trimesh.load_scene(corpus / "glb/assimp/BoxWithInfinites.glb")
    image = render(prepare(scene, "+Y"), "front", size=64, supersample=1)
    assert image.size == (64, 64)


def test_empty_scene_is_background_only():
    image = np.asarray(render(prepare(trimesh.Scene()), "front", size=32, supersample=1))
    assert (image == (244, 245, 247, 255)).all()


def test_thumbnails_step_writes_three_pngs(tmp_path):
    spec = _step("thumbnails")
    params = testing.params_for(spec, {"size": 96, "supersample": 1, "background": "transparent"})
    view = testing.view(testing.cube(20.0), units=Units("mm", "+Z"), id="cube")
    paths = spec.write(view, params, testing.step_context(spec, params, out_dir=tmp_path))
    assert [p.name for p in paths] == ["cube.front.png", "cube.threequarter.png", "cube.top.png"]
    for p in paths:
        with Image.open(p) as im:
            assert im.size == (96, 96) and im.mode == "RGBA"
            alpha = np.asarray(im)[:, :, 3]
            assert 0.2 < (alpha > 0).mean() < 0.95


def test_thumbnails_step_rejects_unknown_views(tmp_path):
    spec = _step("thumbnails")
    params = testing.params_for(spec, {"views": ["side"]})
    with pytest.raises(ValueError, match="side"):
        spec.write(testing.view(testing.cube()), params, testing.step_context(spec, params, out_dir=tmp_path))


def test_plugin_registers_both_steps_with_defaulted_params():
    from meshforge.plugins import load_plugins

    record = next(r for r in load_plugins(entry_points=False).records if r.name == "builtin.export.visual")
    assert record.status == "active"
    steps = {e.name: e.spec for entries in record.steps.values() for e in entries}
    assert set(steps) == {"thumbnails", "debug_glb"}
    for spec in steps.values():
        spec.params()  # every parameter has a default
        assert spec.params.__dataclass_params__.frozen
