"""Webhooks: signed callbacks from providers, handed to the jobs waiting for them.

Signature scheme (``X-Meshforge-Signature: t=<unix seconds>,v1=<hex>``): ``v1`` is
HMAC-SHA256(secret, ``"<t>." + raw body``). The receiver refuses a missing or wrong signature, a
timestamp outside ``tolerance_s`` (default 300 s) and a signature it has already accepted (replay).
No provider documents its own scheme [PROVIDERS.md: Meshy's is unconfirmed], so providers that call
back are pointed at a relay or configured with this scheme; the generic REST provider uses it as is.

The receiver writes the parsed status under ``webhook:<provider>:<job id>`` in the same
:class:`~meshforge.generation.store.JobStore` the jobs use; a job waiting with ``webhook = true``
reads it there (works across processes with the SQLite store).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from meshforge.generation.client import status_to_record
from meshforge.generation.providers import Provider
from meshforge.generation.store import JobStore

log = logging.getLogger("meshforge.webhook")

HEADER = "X-Meshforge-Signature"
MAX_BODY = 1024 * 1024


def sign(secret: str | bytes, body: bytes, timestamp: int | None = None) -> str:
    """The header value for ``body``: ``t=<ts>,v1=<hex hmac>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    ts = int(time.time() if timestamp is None else timestamp)
    mac = hmac.new(key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


class SignatureError(Exception):
    pass


class Verifier:
    """Checks signatures, the timestamp window and replays (remembers accepted signatures for the window)."""

    def __init__(self, secret: str | bytes, tolerance_s: float = 300.0, remember: int = 100_000) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        self._key = secret.encode() if isinstance(secret, str) else secret
        self.tolerance_s = tolerance_s
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._remember = remember
        self._lock = threading.Lock()

    def verify(self, header: str | None, body: bytes, now: float | None = None) -> None:
        if not header:
            raise SignatureError("no signature header")
        parts = dict(p.strip().split("=", 1) for p in header.split(",") if "=" in p)
        try:
            ts = int(parts["t"])
            given = parts["v1"]
        except (KeyError, ValueError):
            raise SignatureError("malformed signature header") from None
        now = time.time() if now is None else now
        if abs(now - ts) > self.tolerance_s:
            raise SignatureError(f"timestamp outside the {self.tolerance_s:g} s window")
        expected = hmac.new(self._key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise SignatureError("signature does not match")
        with self._lock:
            if given in self._seen:
                raise SignatureError("replayed signature")
            self._seen[given] = now
            while self._seen and (len(self._seen) > self._remember or next(iter(self._seen.values())) < now - self.tolerance_s):
                self._seen.popitem(last=False)


class WebhookReceiver:
    """Turns verified callbacks into status records in the job store."""

    def __init__(self, store: JobStore, providers: Mapping[str, Provider], verifier: Verifier) -> None:
        self.store = store
        self.providers = dict(providers)
        self.verifier = verifier
        self.accepted = 0
        self.rejected = 0

    def handle(self, provider: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """(HTTP status, short reason). Never raises for bad input."""
        adapter = self.providers.get(provider)
        if adapter is None:
            return 404, f"no provider {provider!r} here"
        header = next((v for k, v in headers.items() if k.lower() == HEADER.lower()), None)
        try:
            self.verifier.verify(header, body)
        except SignatureError as exc:
            self.rejected += 1
            log.warning("webhook %s rejected: %s", provider, exc)
            return 401, str(exc)
        try:
            payload = json.loads(body)
        except ValueError:
            self.rejected += 1
            return 400, "body is not JSON"
        parsed = adapter.parse_webhook(payload) if isinstance(payload, Mapping) else None
        if parsed is None:
            self.rejected += 1
            return 422, "not a job status this provider sends"
        job_id, status = parsed
        self.store.save(f"webhook:{adapter.name}:{job_id}", status_to_record(status))
        self.accepted += 1
        log.info("webhook %s: job %s is %s", provider, job_id, status.state)
        return 204, "ok"


def make_server(receiver: WebhookReceiver, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server answering ``POST /webhook/<provider>`` (run ``serve_forever`` on it)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms delayed-ACK stalls

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("webhook %s", fmt % args)

        def _answer(self, status: int, reason: str) -> None:
            body = json.dumps({"status": status, "reason": reason}).encode() if status != 204 else b""
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "webhook":
                self._answer(404, "POST /webhook/<provider>")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY:
                self.close_connection = True
                self._answer(413, "body too large or without length")
                return
            body = self.rfile.read(length)
            status, reason = receiver.handle(parts[1], dict(self.headers.items()), body)
            self._answer(status, reason)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(200 if self.path == "/health" else 404, "ok" if self.path == "/health" else "not found")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


__all__ = ["HEADER", "SignatureError", "Verifier", "WebhookReceiver", "make_server", "sign"]
