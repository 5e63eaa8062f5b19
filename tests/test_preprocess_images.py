"""image.normalize and input.fingerprint on real corpus images and constructed edge cases."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from meshforge import Engine, testing
from meshforge.asset import Inputs
from meshforge.builtin.preprocess import images as images_mod
from meshforge.builtin.preprocess.fingerprint import STEP as FINGERPRINT
from meshforge.errors import InputError
from meshforge.types import ReadLimits

STEP = images_mod.meshforge_preprocess_steps()[0]


def normalize(paths, tmp_path, limits=None, **params):
    p = testing.params_for(STEP, params)
    ctx = testing.step_context(STEP, p, work_dir=tmp_path, limits=limits)
    return STEP.apply(Inputs(id="job", images=tuple(paths)), p, ctx)


def textured(size=(400, 300), mode="RGB"):
    """A photo-like test card: gradients plus sharp edges (passes the blur check)."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x // 16 + y // 16) % 2) * 255], axis=-1)
    img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return img.convert(mode) if mode != "RGB" else img


def test_corpus_jpeg_becomes_a_metadata_free_png_and_the_original_is_kept(corpus, tmp_path):
    src = corpus / "obj/trimesh/capsule0.jpg"
    before = src.read_bytes()
    out = normalize([src], tmp_path, max_side=1024)
    assert out.images == (src,) and src.read_bytes() == before
    (path,) = out.prepared["images"]
    img = Image.open(path)
    assert img.format == "PNG" and img.mode == "RGB" and img.size == (1024, 512)
    assert not img.info.get("exif") and not img.info.get("icc_profile")
    assert out.prepared["image_info"][0]["original_size"] == [2048, 1024]


def test_exif_orientation_is_applied_and_exif_is_dropped(tmp_path):
    img = textured((400, 300))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x010F] = "CameraMaker"
    src = tmp_path / "rotated.jpg"
    img.save(src, exif=exif.tobytes(), quality=95)
    out = normalize([src], tmp_path)
    res = Image.open(out.prepared["images"][0])
    assert res.size == (300, 400)
    assert not res.getexif()
    assert out.prepared["image_info"][0]["exif_orientation"] == 6


def test_cmyk_sixteen_bit_and_palette_inputs_become_rgb(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    textured().convert("CMYK").save(cmyk)
    grey16 = tmp_path / "grey16.png"
    arr = (np.tile(np.linspace(0, 65535, 400), (300, 1))).astype(np.uint16)
    arr[::8] = 0
    Image.fromarray(arr).save(grey16)
    pal = tmp_path / "pal.png"
    textured().convert("P").save(pal)
    out = normalize([cmyk, grey16, pal], tmp_path)
    modes = [Image.open(p).mode for p in out.prepared["images"]]
    assert modes == ["RGB", "RGB", "RGB"]
    g = np.asarray(Image.open(out.prepared["images"][1]))
    assert g[1, -1, 0] == 255 and g[1, 0, 0] == 0  # 16-bit scaled to 8 bits, not clipped


def test_embedded_icc_profile_is_converted_and_not_carried_over(tmp_path):
    src = tmp_path / "icc.png"
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    textured().save(src, icc_profile=profile)
    out = normalize([src], tmp_path)
    assert "icc_profile" not in Image.open(out.prepared["images"][0]).info


def test_alpha_is_kept_and_padding_is_transparent_or_neutral(corpus, tmp_path):
    wide = tmp_path / "wide.png"
    textured((400, 300), "RGBA").save(wide)
    out = normalize([wide], tmp_path, pad_square=True, background="transparent")
    img = Image.open(out.prepared["images"][0])
    assert img.mode == "RGBA" and img.size == (400, 400) and img.getpixel((0, 0))[3] == 0
    out = normalize([wide], tmp_path, pad_square=True, background="white")
    assert Image.open(out.prepared["images"][0]).getpixel((0, 0)) == (255, 255, 255, 255)
    logo = corpus / "gltf/glTF-Transform/BoxTextured_glTF/CesiumLogoFlat.png"
    assert Image.open(normalize([logo], tmp_path).prepared["images"][0]).mode == "RGBA"


def test_small_blurry_corrupt_and_oversized_images_are_rejected_with_codes(corpus, tmp_path):
    small = tmp_path / "small.png"
    textured((100, 80)).save(small)
    flat = tmp_path / "flat.png"
    Image.new("RGB", (400, 300), (120, 120, 120)).save(flat)
    cases = [
        ([small], {}, None, "image.too_small"),
        ([flat], {}, None, "image.blurry"),
        ([corpus / "gltf/glTF-Validator/image/png_eos.png"], {}, None, "input.corrupt_image"),
        ([corpus / "obj/trimesh/capsule0.jpg"], {}, ReadLimits(max_image_pixels=1_000_000), "input.image_too_large"),
        ([tmp_path / "missing.png"], {}, None, "input.unreadable"),
    ]
    for paths, params, limits, code in cases:
        with pytest.raises(InputError) as err:
            normalize(paths, tmp_path, limits=limits, **params)
        assert err.value.code == code, (paths, err.value)


def test_blur_check_separates_a_sharp_photo_from_its_blurred_copy(corpus, tmp_path):
    from PIL import ImageFilter

    src = corpus / "obj/trimesh/fuze uv.jpg"
    blurred = tmp_path / "blurred.png"
    Image.open(src).convert("RGB").filter(ImageFilter.GaussianBlur(12)).save(blurred)
    sharp = normalize([src], tmp_path).prepared["image_info"][0]["sharpness"]
    with pytest.raises(InputError) as err:
        normalize([blurred], tmp_path)
    assert err.value.code == "image.blurry" and sharp > 15.0


def test_fingerprint_ignores_encoding_and_metadata_but_not_pixels_or_prompt(tmp_path):
    a, b, c = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    img = textured()
    img.save(a)
    img.save(b, icc_profile=ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes(), compress_level=1)
    changed = img.copy()
    changed.putpixel((5, 5), (1, 2, 3))
    changed.save(c)
    assert a.read_bytes() != b.read_bytes()

    def fp(path, prompt=None):
        inputs = normalize([path], tmp_path)
        inputs = Inputs(id="j", images=inputs.images, prompt=prompt, prepared=inputs.prepared)
        return FINGERPRINT.apply(inputs, None, testing.step_context(FINGERPRINT)).prepared["fingerprint"]

    assert fp(a) == fp(b)
    assert fp(a) != fp(c)
    assert fp(a, "a  red chair") == fp(a, "a red chair ") != fp(a, "a blue chair")


def test_a_rejected_image_makes_the_run_unusable_with_its_code(tmp_path):
    small = tmp_path / "small.png"
    textured((100, 80)).save(small)
    engine = Engine({"name": "t", "chain": {"preprocess": ["image.normalize"], "generate": ["relief"]}}, entry_points=False)
    report = engine.validate(small)
    assert str(report.status) == "unusable"
    assert [f.code for f in report.findings] == ["image.too_small"]
