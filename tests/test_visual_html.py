"""HTML report pages and the batch gallery, rendered from real engine runs over corpus files."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import trimesh
from click.testing import CliRunner

from meshforge import Engine, hookimpl
from meshforge.cli.main import main
from meshforge.types import Severity, ValidateStep
from meshforge.visual.debug import edge_topology, weld
from meshforge.visual.html import format_number, page_name, write_asset_page, write_gallery, write_run

CORPUS_FILES = ("stl/trimesh/teapot.stl", "stl/trimesh/shared.STL", "glb/trimesh/BoxTextured.glb")


def _edges(view):
    mesh = view.mesh
    _, _, per_edge = edge_topology(weld(mesh.vertices, mesh.faces))
    return per_edge


def check_edges(view, params, ctx):
    per_edge = _edges(view)
    open_edges = int((per_edge == 1).sum())
    if open_edges:
        yield ctx.finding("demo.open_edges", Severity.ERROR, f"{open_edges} open edges", measured=open_edges,
                          threshold=0, count=open_edges, samples=[0, 1])
    shared = int((per_edge > 2).sum())
    if shared:
        yield ctx.finding("demo.non_manifold", Severity.ERROR, f"{shared} edges shared by more than two faces",
                          measured=shared, threshold=0, count=shared)
    yield ctx.finding("demo.size", Severity.INFO, "largest extent", measured=float(view.mesh.extents.max()),
                      threshold=[220.0, 210.0, 220.0])


class DemoChecks:
    """A runtime plugin standing in for the real validators (this test is about the pictures)."""

    __name__ = "demo_checks"

    @hookimpl
    def meshforge_validate_steps(self):
        return [ValidateStep(name="demo.edges", summary="open and non-manifold edges",
                             codes=("demo.open_edges", "demo.non_manifold", "demo.size"), check=check_edges)]


PROFILE = {
    "name": "visual-test",
    "chain": {"generate": ["import"], "validate": ["edges"], "repair": ["weld", "fill_holes"],
              "export": ["glb", "thumbnails", "debug_glb"]},
    "steps": {"import": {}, "edges": {"uses": "demo.edges"},
              "weld": {"uses": "mesh.weld", "always": True},
              "fill_holes": {"uses": "mesh.fill_holes", "always": True},
              "thumbnails": {"size": 128, "supersample": 1}},
}


def make_run(corpus: Path, out_dir: Path) -> list[dict]:
    """Run the visual-test profile over three corpus files; returns their report dicts."""
    engine = Engine(PROFILE, plugins=[DemoChecks()], entry_points=False)
    return [engine.run(corpus / rel, out_dir=out_dir).to_dict() for rel in CORPUS_FILES]


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return out, make_run(corpus, out)


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: dict[str, str] = {}
        self._script_id: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._script_id = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._script_id:
            self.scripts[self._script_id] = self.scripts.get(self._script_id, "") + data


def _parse(path: Path) -> _Collect:
    parser = _Collect()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_the_run_produced_a_pass_and_a_fail(run):
    out, reports = run
    assert [r["status"] for r in reports] == ["pass", "fail", "pass"]
    assert (out / "teapot.front.png").is_file() and (out / "rejected" / "shared.debug.glb").is_file()


def test_asset_page_shows_verdict_findings_repairs_and_pictures(run):
    out, reports = run
    page = write_asset_page(reports[1], out / "rejected")  # shared.STL: a non-manifold edge remains
    assert page.name == "shared.report.html"
    html = page.read_text(encoding="utf-8")
    doc = _parse(page)
    body = next(attrs for tag, attrs in doc.tags if tag == "body")
    assert body["data-status"] == "fail"
    row = re.search(r'<tr class="finding" data-code="demo.non_manifold".*?</tr>', html, re.S)
    assert row and "1 edges shared by more than two faces" in row.group(0)
    cells = re.findall(r'<td class="num">(.*?)</td>', row.group(0))
    assert cells[:3] == ["1", "0", "1"]  # measured, threshold, count
    assert "220 × 210 × 220" in html  # a list threshold
    imgs = [a for t, a in doc.tags if t == "img"]
    assert len(imgs) == 3 and all(a["src"].startswith("data:image/png;base64,") for a in imgs)
    viewer = next(a for t, a in doc.tags if t == "model-viewer")
    assert viewer["src"].startswith("data:model/gltf-binary;base64,")
    assert 'id="legend"' in html and "non manifold: <b>4</b> faces" in html


def test_repairs_show_before_and_after(run):
    out, reports = run
    html = write_asset_page(reports[0], out).read_text(encoding="utf-8")  # teapot: 6 holes filled
    repair = re.search(r'<tr class="repair" data-step="fill_holes">.*?</table></td>', html, re.S).group(0)
    assert "filled 6 of 6 holes" in repair
    tri = re.search(r'<tr class="changed"><th>triangles</th><td class="num">(.*?)</td><td class="arrow">→</td>'
                    r'<td class="num">(.*?)</td>', repair)
    assert tri and tri.groups() == ("894", "958")


def test_page_is_self_contained_and_offline(run):
    out, reports = run
    page = write_asset_page(reports[2], out)
    doc = _parse(page)
    urls = [v for _, attrs in doc.tags for k, v in attrs.items() if k in ("src", "href") and v]
    assert urls and not [u for u in urls if re.match(r"^(https?:)?//", u)]
    scripts = [a["src"] for t, a in doc.tags if t == "script" and a.get("src")]
    assert len(scripts) == 1 and scripts[0].startswith("data:text/javascript;base64,")
    assert json.loads(doc.scripts["report-data"]) == reports[2]  # the JSON rides along, unchanged


def test_each_model_is_embedded_once(run):
    """The first model rode twice (the viewer's src and the script's sources): a 40 MB GLB made a 107 MB page."""
    import base64

    out, reports = run
    page = write_asset_page(reports[0], out)
    text = page.read_text(encoding="utf-8")
    glbs = [Path(o["path"]) for o in reports[0]["outputs"] if str(o["path"]).endswith(".glb")]
    assert len(glbs) == 2  # the exported GLB and the problem-regions one
    for glb in glbs:
        assert text.count(base64.b64encode(glb.read_bytes()).decode("ascii")) == 1, glb.name


def test_a_model_over_the_inline_limit_is_linked_and_the_page_says_how_to_view_it(run, tmp_path):
    out, reports = run
    page = write_asset_page(reports[0], out, name="linked", inline_limit_bytes=1)
    doc = _parse(page)
    (viewer,) = [a for t, a in doc.tags if t == "model-viewer"]
    assert viewer["src"].endswith(".glb") and not viewer["src"].startswith("data:") and (out / viewer["src"]).is_file()
    assert "linked, not embedded" in page.read_text(encoding="utf-8")


def test_text_from_the_report_is_escaped(tmp_path):
    report = {"schema": "meshforge.report/1", "status": "fail", "input": {"name": "x<y>.stl"},
              "findings": [{"code": "demo.bad", "severity": "error", "message": "<script>alert(1)</script></script>",
                            "measured": "<b>", "threshold": None, "count": None, "samples": [], "step": "s",
                            "fixable_by": []}]}
    page = write_asset_page(report, tmp_path)
    html = page.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert json.loads(_parse(page).scripts["report-data"]) == report


def test_gallery_has_one_card_per_job_with_filters_and_links(run, tmp_path):
    out, reports = run
    pages = {i: write_asset_page(r, out / ("rejected" if r["status"] != "pass" else "")) for i, r in enumerate(reports)}
    gallery = write_gallery(reports, out, pages=pages)
    doc = _parse(gallery)
    cards = [a for t, a in doc.tags if t == "article"]
    assert [c["data-status"] for c in cards] == ["pass", "fail", "pass"]
    assert " demo.non_manifold " in cards[1]["data-codes"]
    options = [a.get("value") for t, a in doc.tags if t == "option"]
    assert {"pass", "fail", "demo.non_manifold", "demo.size"} <= set(options)
    links = [a["href"] for t, a in doc.tags if t == "a"]
    assert sorted(links) == ["BoxTextured.report.html", "rejected/shared.report.html", "teapot.report.html"]
    thumbs = [a["src"] for t, a in doc.tags if t == "img"]
    assert len(thumbs) == 3 and all((out / src).is_file() for src in thumbs)


def test_report_command_renders_a_run_folder(run):
    out, _ = run
    result = CliRunner().invoke(main, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file() and (out / "rejected" / "shared.report.html").is_file()
    assert str(out / "index.html") in result.output


def test_report_command_on_a_folder_without_reports(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no *.report.json" in result.output
    assert not (tmp_path / "index.html").exists()


def test_numbers_are_readable():
    assert format_number(1234567) == "1,234,567"
    assert format_number(0.000012) == "1.200e-05"
    assert format_number(12.3456789) == "12.35"
    assert format_number(123456.7) == "123,457" and format_number(3.4e38) == "3.400e+38"
    assert format_number(None) == "—" and format_number(True) == "yes"
    assert page_name({"input": {"name": "/a/b/chair v2.glb"}}) == "chair_v2"


def test_debug_glb_of_the_page_loads_as_a_scene(run):
    out, _ = run
    scene = trimesh.load_scene(out / "rejected" / "shared.debug.glb")
    assert "non_manifold" in scene.geometry


def test_write_run_puts_pages_beside_their_json(corpus, tmp_path):
    engine = Engine(PROFILE, plugins=[DemoChecks()], entry_points=False)
    reports = [engine.run(corpus / rel, out_dir=tmp_path) for rel in CORPUS_FILES[:2]]
    pages, gallery = write_run(reports, tmp_path)
    assert pages == [tmp_path / "teapot.report.html", tmp_path / "rejected" / "shared.report.html"]
    assert (tmp_path / "teapot.report.json").is_file() and (tmp_path / "rejected" / "shared.report.json").is_file()
    assert gallery == tmp_path / "index.html" and 'href="rejected/shared.report.html"' in gallery.read_text()


def test_report_command_can_write_elsewhere(run, tmp_path):
    out, _ = run
    result = CliRunner().invoke(main, ["report", str(out), "--out", str(tmp_path / "site"), "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "site" / "index.html")
    assert (tmp_path / "site" / "rejected" / "shared.report.html").is_file()
    html = (tmp_path / "site" / "index.html").read_text()
    assert 'href="teapot.report.html"' in html and "no thumbnail" not in html


def test_a_copied_run_folder_s_pages_link_its_own_files(run, tmp_path):
    """cp -r RUN COPY && meshforge report COPY: the pages linked ../RUN/... (the recorded paths still
    existed there) and broke once the original was deleted."""
    import re
    import shutil

    out, _ = run
    copy = tmp_path / "moved run"
    shutil.copytree(out, copy)
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    for page in [copy / "index.html", *copy.rglob("*.report.html")]:
        for link in re.findall(r'(?:href|src)="([^"#:]+)"', page.read_text(encoding="utf-8")):
            target = (page.parent / link).resolve()
            assert copy.resolve() in target.parents, (page.name, link)
