"""``meshforge report DIR``: HTML pages for every ``*.report.json`` under DIR, plus a gallery."""

from __future__ import annotations

from pathlib import Path

import click

from meshforge.cli.main import EXIT_UNUSABLE, handle_errors


@click.command("report")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the pages here instead of beside each report (the gallery is OUT/index.html).")
@click.option("--quiet", "-q", is_flag=True, help="Print only the gallery's path.")
@handle_errors
def report(folder: Path, out_dir: Path | None, quiet: bool) -> None:
    """Render FOLDER's per-asset JSON reports (a `meshforge run` output folder) as HTML.

    Each asset page is self-contained (thumbnails, 3D preview, findings, repairs) and opens
    offline; FOLDER/index.html is a gallery with one card per asset, filterable by status and
    finding code.
    """
    from meshforge.visual.html import render_dir

    if not any(folder.rglob("*.report.json")):
        click.echo(f"meshforge: {folder}: no *.report.json found (run `meshforge run ... --out {folder}` first)", err=True)
        raise SystemExit(EXIT_UNUSABLE)
    pages, gallery = render_dir(folder, out_dir=out_dir)
    if not quiet:
        for page in pages:
            click.echo(str(page))
    click.echo(str(gallery))
