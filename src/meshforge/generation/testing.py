"""A local generation-provider server for tests and benchmarks: real HTTP on 127.0.0.1, five protocols.

A testing aid for provider-plugin authors (pytest fixtures over it: :mod:`meshforge.generation.pytest_plugin`).

It speaks Meshy, Tripo, 3D AI Studio, Stability (synchronous) and a generic REST service as
shared/PROVIDERS.md describes them, under ``/<provider>/...``, and serves the finished models under
``/files/<provider>/<task>.glb`` (pre-signed-URL style: no auth expected). Fault injection::

    with ProviderServer() as server:
        server.inject("meshy", "submit", status=429, retry_after=1)       # next submit gets a 429
        server.inject("tripo", "poll", kind="malformed", times=2)          # two polls answer broken JSON
        server.inject("meshy", "download", kind="truncated")               # half a GLB, then EOF
        server.fail_next_task("rest", reason="moderation")                 # the next task ends FAILED
        base = server.base("meshy")                                        # profile base_url

``submissions`` counts *accepted* task creations per provider (what a provider would charge for);
``requests`` logs every request (provider, phase, method, path, had_auth).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import itertools
import json
import re
import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

PROVIDERS = ("meshy", "tripo", "3daistudio", "stability", "rest")
KEY_ENV = {"meshy": "MESHY_API_KEY", "tripo": "TRIPO_API_KEY", "3daistudio": "THREEDAISTUDIO_API_KEY",
           "stability": "STABILITY_API_KEY", "rest": "REST_API_KEY"}

WORDS = {  # queued, running, succeeded, failed
    "meshy": ("PENDING", "IN_PROGRESS", "SUCCEEDED", "FAILED"),
    "tripo": ("queued", "running", "success", "failed"),
    "3daistudio": ("PENDING", "IN_PROGRESS", "FINISHED", "FAILED"),
    "rest": ("pending", "running", "succeeded", "failed"),
}


def cube_glb() -> bytes:
    """A small valid GLB (a 10 cm cube) made with trimesh."""
    import trimesh

    return trimesh.Scene(trimesh.creation.box(extents=(0.1, 0.1, 0.1))).export(file_type="glb")


@dataclass
class Fault:
    kind: str = "status"  # status | malformed | slow | html | truncated | drop
    status: int = 500
    retry_after: float | str | None = None
    delay: float = 0.0
    body: Any = None


@dataclass
class Task:
    id: str
    provider: str
    created: float
    polls: int = 0
    fail_reason: str | None = None
    body: dict[str, Any] = field(default_factory=dict)


class ProviderServer:
    def __init__(self, *, latency: float = 0.0, task_seconds: float = 0.0, polls_to_finish: int = 1,
                 model: bytes | None = None, require_auth: bool = True) -> None:
        self.latency = latency
        self.task_seconds = task_seconds
        self.polls_to_finish = polls_to_finish
        self.model = model if model is not None else cube_glb()
        self.require_auth = require_auth
        self.keys = {p: f"test-key-{p}" for p in PROVIDERS}
        self.submissions: Counter[str] = Counter()
        self.requests: list[tuple[str, str, str, str, bool]] = []
        self.tasks: dict[str, Task] = {}
        self.webhook: tuple[str, str] | None = None  # (receiver base URL, secret): POSTed when tasks finish
        self.webhook_bad_signature = False
        self.webhooks_sent: list[int] = []
        self._faults: dict[tuple[str, str], deque[Fault]] = defaultdict(deque)
        self._fail_next: dict[str, deque[str]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------------

    def inject(self, provider: str, phase: str, *, kind: str = "status", times: int = 1, status: int = 500,
               retry_after: float | str | None = None, delay: float = 0.0, body: Any = None) -> None:
        with self._lock:
            for _ in range(times):
                self._faults[(provider, phase)].append(Fault(kind, status, retry_after, delay, body))

    def fail_next_task(self, provider: str, reason: str = "generation failed") -> None:
        with self._lock:
            self._fail_next[provider].append(reason)

    def env(self) -> dict[str, str]:
        """Environment variables with each provider's test key (for monkeypatch.setenv)."""
        return {KEY_ENV[p]: self.keys[p] for p in PROVIDERS}

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def base(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def count(self, provider: str, phase: str) -> int:
        return sum(1 for r in self.requests if r[0] == provider and r[1] == phase)

    def start(self) -> ProviderServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        server.daemon_threads = True
        server.request_queue_size = 512
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- internals -------------------------------------------------------------------------------

    def _fault(self, provider: str, phase: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get((provider, phase))
            return queue.popleft() if queue else None

    def _create(self, provider: str, body: dict[str, Any]) -> Task:
        with self._lock:
            task = Task(id=f"{provider[:4]}-{next(self._ids):05d}", provider=provider, created=time.monotonic(), body=body)
            if self._fail_next[provider]:
                task.fail_reason = self._fail_next[provider].popleft()
            self.tasks[task.id] = task
            self.submissions[provider] += 1
        if self.webhook is not None:
            threading.Timer(max(self.task_seconds, 0.01), self._send_webhook, args=(task,)).start()
        return task

    def _state(self, task: Task) -> int:
        """0 queued, 1 running, 2 succeeded, 3 failed."""
        done = task.polls >= self.polls_to_finish and time.monotonic() - task.created >= self.task_seconds
        if not done:
            return 0 if task.polls == 0 else 1
        return 3 if task.fail_reason else 2

    def file_url(self, task: Task) -> str:
        return f"{self.url}/files/{task.provider}/{task.id}.glb"

    def status_body(self, task: Task, state: int | None = None) -> dict[str, Any]:
        state = self._state(task) if state is None else state
        word = WORDS[task.provider][state]
        progress = [0, 50, 100, 100][state]
        url = self.file_url(task) if state == 2 else None
        if task.provider == "meshy":
            return {"id": task.id, "status": word, "progress": progress, "model_urls": {"glb": url} if url else {},
                    "task_error": {"message": task.fail_reason or ""}}
        if task.provider == "tripo":
            return {"code": 0, "data": {"task_id": task.id, "status": word, "progress": progress, "running_left_time": 0,
                                        "output": {"pbr_model": url} if url else {}}}
        if task.provider == "3daistudio":
            return {"status": word, "progress": progress, "failure_reason": task.fail_reason,
                    "results": [{"asset_url": url, "asset_type": "3D_MODEL"}] if url else []}
        return {"id": task.id, "status": word, "progress": progress, "model_url": url, "error": task.fail_reason}

    def _send_webhook(self, task: Task) -> None:
        if self.webhook is None:
            return
        target, secret = self.webhook
        body = json.dumps(self.status_body(task, 3 if task.fail_reason else 2)).encode()
        ts = int(time.time())
        key = (secret + "-wrong" if self.webhook_bad_signature else secret).encode()
        mac = hmac.new(key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        name = {"3daistudio": "threedaistudio"}.get(task.provider, task.provider)
        try:
            r = httpx.post(f"{target}/webhook/{name}", content=body, timeout=5.0,
                           headers={"Content-Type": "application/json", "X-Meshforge-Signature": f"t={ts},v1={mac}"})
            self.webhooks_sent.append(r.status_code)
        except httpx.HTTPError:
            self.webhooks_sent.append(0)


_ROUTES = [
    ("POST", re.compile(r"^/meshy/v1/image-to-3d$"), "meshy", "submit"),
    ("POST", re.compile(r"^/meshy/v2/text-to-3d$"), "meshy", "submit"),
    ("GET", re.compile(r"^/meshy/v[12]/(?:image|text)-to-3d/(?P<id>[\w-]+)$"), "meshy", "poll"),
    ("POST", re.compile(r"^/tripo/upload$"), "tripo", "upload"),
    ("POST", re.compile(r"^/tripo/task$"), "tripo", "submit"),
    ("GET", re.compile(r"^/tripo/task/(?P<id>[\w-]+)$"), "tripo", "poll"),
    ("POST", re.compile(r"^/3daistudio/v1/3d-models/[\w./-]+$"), "3daistudio", "submit"),
    ("GET", re.compile(r"^/3daistudio/v1/generation-request/(?P<id>[\w-]+)/status/?$"), "3daistudio", "poll"),
    ("POST", re.compile(r"^/stability/v2beta/3d/[\w-]+$"), "stability", "submit"),
    ("POST", re.compile(r"^/rest/jobs$"), "rest", "submit"),
    ("GET", re.compile(r"^/rest/jobs/(?P<id>[\w-]+)$"), "rest", "poll"),
    ("GET", re.compile(r"^/files/(?P<provider>[\w-]+)/(?P<id>[\w-]+)\.glb$"), "*", "download"),
]


def _handler(state: ProviderServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: without this, 40 ms delayed-ACK stalls

        def log_message(self, fmt: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes | dict[str, Any] | list[Any], ctype: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, method: str) -> None:
            length = int(self.headers.get("Content-Length", "0") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            for m, pattern, provider, phase in _ROUTES:
                match = pattern.match(path)
                if m == method and match:
                    break
            else:
                self._send(404, {"message": f"no route {method} {path}"})
                return
            if provider == "*":
                provider = match.group("provider")
            had_auth = "Authorization" in self.headers
            with state._lock:
                state.requests.append((provider, phase, method, path, had_auth))
            if state.latency:
                time.sleep(state.latency)
            fault = state._fault(provider, phase)
            if fault is not None and self._apply(fault, phase):
                return
            if phase != "download" and state.require_auth and self.headers.get("Authorization") != f"Bearer {state.keys[provider]}":
                self._send(401, {"code": 1002, "message": "invalid api key"} if provider == "tripo" else {"message": "Unauthorized"})
                return
            getattr(self, f"_{phase}")(provider, match, raw)

        def _apply(self, fault: Fault, phase: str) -> bool:
            """True when the fault replaced the answer."""
            if fault.kind == "slow":
                time.sleep(fault.delay)
                return False
            if fault.kind == "status":
                headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
                self._send(fault.status, fault.body if fault.body is not None else {"message": f"injected {fault.status}"},
                           headers=headers)
                return True
            if fault.kind == "malformed":
                self._send(200, b'{"status": "SUCC', ctype="application/json")
                return True
            if fault.kind == "html":
                self._send(200, b"<!DOCTYPE html><html><body>Service temporarily unavailable</body></html>", ctype="text/html")
                return True
            if fault.kind == "truncated":
                data = state.model
                self.send_response(200)
                self.send_header("Content-Type", "model/gltf-binary")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return True
            if fault.kind == "drop":
                self.close_connection = True
                return True
            raise ValueError(f"unknown fault {fault.kind}")

        # --- phases ------------------------------------------------------------------------

        def _upload(self, provider: str, match: Any, raw: bytes) -> None:
            if not self.headers.get("Content-Type", "").startswith("multipart/form-data"):
                self._send(400, {"code": 1004, "message": "multipart expected"})
                return
            token = hashlib.sha256(raw).hexdigest()[:16]
            self._send(200, {"code": 0, "data": {"image_token": token}})

        def _submit(self, provider: str, match: Any, raw: bytes) -> None:
            ctype = self.headers.get("Content-Type", "")
            if provider == "stability":
                if not ctype.startswith("multipart/form-data") or b'name="image"' not in raw:
                    self._send(400, {"name": "bad_request", "errors": ["image: required"]})
                    return
                state._create(provider, {})
                self._send(200, state.model, ctype="model/gltf-binary")
                return
            try:
                body = json.loads(raw)
            except ValueError:
                self._send(400, {"message": "JSON body expected"})
                return
            if provider == "meshy":
                if "image-to-3d" in self.path and not str(body.get("image_url", "")).startswith(("data:image/", "http")):
                    self._send(400, {"message": "image_url must be a URL or data URI"})
                    return
                task = state._create(provider, body)
                self._send(202, {"result": task.id})
            elif provider == "tripo":
                if body.get("type") == "image_to_model" and not (body.get("file") or {}).get("file_token") and not (body.get("file") or {}).get("url"):
                    self._send(400, {"code": 1004, "message": "file required"})
                    return
                task = state._create(provider, body)
                self._send(200, {"code": 0, "data": {"task_id": task.id}}, headers={"X-Tripo-Trace-ID": task.id})
            elif provider == "3daistudio":
                if "image" in body:
                    base64.b64decode(body["image"], validate=True)
                task = state._create(provider, body)
                self._send(200, {"task_id": task.id, "created_at": time.time()})
            else:
                task = state._create(provider, body)
                self._send(201, {"id": task.id})

        def _poll(self, provider: str, match: Any, raw: bytes) -> None:
            task = state.tasks.get(match.group("id"))
            if task is None or task.provider != provider:
                self._send(404, {"message": "no such task"})
                return
            with state._lock:
                task.polls += 1
            self._send(200, state.status_body(task))

        def _download(self, provider: str, match: Any, raw: bytes) -> None:
            task = state.tasks.get(match.group("id"))
            if task is None:
                self._send(404, b"not found", ctype="text/plain")
                return
            self._send(200, state.model, ctype="model/gltf-binary")

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch("POST")

    return Handler


__all__ = ["KEY_ENV", "PROVIDERS", "ProviderServer", "cube_glb", "main"]


def main(argv: list[str] | None = None) -> None:
    """A standalone server for benchmarks and manual tries: prints its URL, serves until killed."""
    import argparse

    ap = argparse.ArgumentParser(description="local generation-provider server")
    ap.add_argument("--task-seconds", type=float, default=0.0)
    ap.add_argument("--polls-to-finish", type=int, default=1)
    ap.add_argument("--latency", type=float, default=0.0)
    ns = ap.parse_args(argv)
    srv = ProviderServer(task_seconds=ns.task_seconds, polls_to_finish=ns.polls_to_finish, latency=ns.latency).start()
    print(srv.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        srv.stop()


if __name__ == "__main__":  # python -m meshforge.generation.testing
    main()
