"""The HTML report and gallery in a real headless Chromium (system package; skipped only if absent)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from meshforge.visual.browser import BrowserError, Chromium, find_chromium
from meshforge.visual.html import write_asset_page, write_gallery

from test_visual_html import make_run  # noqa: E402 - the same engine run the HTML tests use

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def site(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    reports = make_run(corpus, out)
    pages = {i: write_asset_page(r, out if r["status"] == "pass" else out / "rejected") for i, r in enumerate(reports)}
    return out, pages, write_gallery(reports, out, pages=pages)


@pytest.fixture(scope="module")
def browser():
    with Chromium(width=1200, height=900, timeout=60) as chromium:
        yield chromium


def _not_blank(png: bytes) -> float:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=float)
    return float(pixels.std())


def test_asset_page_loads_the_model_without_console_errors(site, browser):
    _, pages, _ = site
    page = browser.open(pages[0].as_uri())  # teapot, from file:// with networking off
    try:
        assert page.wait_for("document.body.dataset.model !== 'pending' && document.body.dataset.model", timeout=60) \
            == "loaded"
        assert page.evaluate("document.querySelector('model-viewer').loaded") is True
        assert page.evaluate("document.getElementById('status').textContent") == "pass"
        # Switch to the problem-regions GLB: it loads too.
        page.evaluate("document.querySelector('button[data-src=debug]').click()")
        assert page.wait_for("document.body.dataset.model !== 'pending' && document.body.dataset.model", timeout=60) \
            == "loaded"
        shot = page.screenshot()
        assert _not_blank(shot) > 10
        # The 3D canvas itself drew something (not just the page around it).
        box = page.evaluate("(() => { const r = document.querySelector('model-viewer').getBoundingClientRect();"
                            " return [r.x, r.y, r.width, r.height]; })()")
        x, y, w, h = (int(v) for v in box)
        canvas = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"), dtype=float)[y:y + h, x:x + w]
        assert canvas.std() > 5
        assert page.errors == []
    finally:
        page.close()


def test_gallery_filters_by_status_and_code(site, browser):
    _, _, gallery = site
    page = browser.open(gallery.as_uri())
    try:
        visible = "document.querySelectorAll('.card:not([hidden])').length"
        assert page.evaluate(visible) == 3
        page.evaluate("(() => { const s = document.getElementById('filter-status'); s.value = 'fail';"
                      " s.dispatchEvent(new Event('input')); })()")
        assert page.evaluate(visible) == 1
        page.evaluate("(() => { const s = document.getElementById('filter-status'); s.value = '';"
                      " s.dispatchEvent(new Event('input')); const c = document.getElementById('filter-code');"
                      " c.value = 'demo.size'; c.dispatchEvent(new Event('input')); })()")
        assert page.evaluate(visible) == 3
        # decoding finishes after the load event on a busy machine: wait for it rather than sample once
        page.wait_for("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)", timeout=30)
        assert _not_blank(page.screenshot()) > 10
        assert page.errors == []
    finally:
        page.close()


def test_console_errors_are_caught(tmp_path, browser):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>console.error('boom'); undefinedFunction();</script></body></html>")
    page = browser.open(bad.as_uri())
    try:
        page.wait_for("document.readyState === 'complete'")
        assert any("boom" in e for e in page.errors) and any("undefinedFunction" in e for e in page.errors)
        with pytest.raises(BrowserError):
            page.wait_for("false", timeout=0.3)
    finally:
        page.close()


def test_a_linked_model_loads_and_a_page_that_cannot_load_it_says_why(site, browser, tmp_path):
    """A GLB over the inline limit is linked: the page's CSP blocked every fetch of it, over http and
    from file:// alike (this Chromium may read files; a default browser refuses file:// fetches, so
    the page then says how to view the model)."""
    import functools
    import http.server
    import json
    import shutil
    import threading

    out, _, _ = site
    folder = tmp_path / "pages"
    folder.mkdir()
    report = json.loads(next(out.glob("*.report.json")).read_text())
    for o in report["outputs"]:  # the files beside the page, as in a run folder
        if str(o["path"]).endswith(".glb"):
            shutil.copy(o["path"], folder)
    page = write_asset_page(report, folder, name="linked-model", inline_limit_bytes=1)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state = "document.body.dataset.model !== 'pending' && document.body.dataset.model"
    try:
        for url in (f"http://127.0.0.1:{server.server_address[1]}/{page.name}", page.as_uri()):
            view = browser.open(url)
            try:
                assert view.wait_for(state, timeout=60) == "loaded", url
                assert view.evaluate("document.getElementById('model-error').hidden") is True
            finally:
                view.close()
    finally:
        server.shutdown()
        server.server_close()
    for glb in folder.glob("*.glb"):
        glb.unlink()
    view = browser.open(page.as_uri())
    try:
        assert view.wait_for(state, timeout=60) == "error"
        assert view.evaluate("document.getElementById('model-error').hidden") is False
        assert "served over http" in view.evaluate("document.getElementById('model-error').textContent")
    finally:
        view.close()
