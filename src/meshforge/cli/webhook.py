"""``meshforge webhook serve``: receive provider callbacks and hand them to waiting jobs."""

from __future__ import annotations

import os
from pathlib import Path

import click

from meshforge.cli.main import handle_errors


@click.group()
def webhook() -> None:
    """Receive generation providers' callbacks (for steps run with webhook = true)."""


@webhook.command()
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Job store the waiting runs use (default: $MESHFORGE_JOB_STORE).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on (put a TLS proxy in front).")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--secret-env", default="MESHFORGE_WEBHOOK_SECRET", show_default=True,
              help="Environment variable holding the HMAC secret (never passed on the command line).")
@click.option("--tolerance", default=300.0, show_default=True, type=float, help="Accepted clock skew / replay window (s).")
@click.option("--provider", "providers", multiple=True, help="Providers to accept (default: every installed provider step).")
@handle_errors
def serve(store_path: Path | None, host: str, port: int, secret_env: str, tolerance: float, providers: tuple[str, ...]) -> None:
    """Listen for POST /webhook/<provider>, verify the signature, record the job's status."""
    from meshforge.errors import MeshforgeError
    from meshforge.generation.store import SqliteJobStore
    from meshforge.generation.webhook import Verifier, WebhookReceiver, make_server

    secret = os.environ.get(secret_env, "")
    if not secret:
        raise MeshforgeError(secret_env, "the webhook secret is not set in this environment variable")
    path = store_path or (Path(os.environ["MESHFORGE_JOB_STORE"]) if os.environ.get("MESHFORGE_JOB_STORE") else None)
    if path is None:
        raise MeshforgeError("--store", "give the job store the runs use (or set MESHFORGE_JOB_STORE)")
    adapters = installed_providers()
    if providers:
        unknown = sorted(set(providers) - set(adapters))
        if unknown:
            raise MeshforgeError("--provider", f"not installed: {', '.join(unknown)}; installed: {', '.join(sorted(adapters))}")
        adapters = {k: v for k, v in adapters.items() if k in providers}
    receiver = WebhookReceiver(SqliteJobStore(path), adapters, Verifier(secret, tolerance_s=tolerance))
    server = make_server(receiver, host, port)
    click.echo(f"meshforge webhook: listening on http://{host}:{server.server_address[1]}/webhook/<provider> "
               f"for {', '.join(sorted(adapters)) or 'no providers'}; store {path}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def installed_providers() -> dict[str, object]:
    """Provider adapters of every installed provider step, with default parameters, by provider name."""
    from meshforge.plugins import load_plugins
    from meshforge.types import Stage

    out: dict[str, object] = {}
    for entry in load_plugins().entries(Stage.GENERATE):
        cls = getattr(entry.spec.generate, "provider_cls", None)  # type: ignore[union-attr]
        if cls is not None:
            out[cls.name] = cls(entry.spec.params())
    return out
