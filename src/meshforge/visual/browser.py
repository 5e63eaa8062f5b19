"""Drive a headless Chromium through the DevTools protocol with the standard library only.

Used by the tests (does a report page load, with no console errors, and does model-viewer say the
model loaded?) and by ``scripts/make_screenshots.py``. No playwright, no browser download: the
system Chromium (Debian ``chromium``) is started with a throw-away profile, networking features
off, and WebGL on SwiftShader (no GPU).

    with Chromium() as browser:
        page = browser.open(Path("out/chair.report.html").resolve().as_uri())
        page.wait_for("document.body.dataset.model === 'loaded'")
        page.screenshot(Path("shot.png"))
        assert page.errors == []
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",  # WebGL on the CPU (model-viewer needs WebGL)
    "--use-angle=swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--allow-file-access-from-files",
)


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    for name in CANDIDATES:
        path = name if os.path.isabs(name) and os.access(name, os.X_OK) else shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """A headless Chromium process with a private profile; ``open(url)`` gives a :class:`Page`."""

    def __init__(self, executable: str | None = None, *, width: int = 1280, height: int = 900, timeout: float = 30.0):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserError("no Chromium found (apt-get install chromium)")
        self.width, self.height, self.timeout = width, height, timeout
        self._profile = tempfile.mkdtemp(prefix="meshforge-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def __enter__(self) -> Chromium:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        args = [self.executable, *FLAGS, f"--window-size={self.width},{self.height}", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", f"--user-data-dir={self._profile}", "about:blank"]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        marker = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited with code {self._proc.returncode}")
            if marker.is_file():
                text = marker.read_text().split()
                if text:
                    self.port = int(text[0])
                    return
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    def open(self, url: str) -> Page:
        """A new tab; navigation starts after the protocol domains are on, so no message is missed."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            target = json.load(resp)
        page = Page(target["webSocketDebuggerUrl"], timeout=self.timeout)
        page.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False})
        page.navigate(url)
        return page

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None
        shutil.rmtree(self._profile, ignore_errors=True)


class Page:
    """One tab: ``call`` a protocol method, ``evaluate`` JavaScript, ``screenshot``; ``errors`` collects
    console errors, uncaught exceptions and failed requests as they arrive."""

    def __init__(self, ws_url: str, *, timeout: float = 30.0):
        self.timeout = timeout
        self._ws = _WebSocket(ws_url, timeout)
        self._next = 0
        self.errors: list[str] = []
        self.console: list[str] = []
        self.loaded = False
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def navigate(self, url: str) -> None:
        self.loaded = False
        self.call("Page.navigate", {"url": url})
        self._pump_until(lambda: self.loaded, self.timeout, "the page's load event")

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next += 1
        msg_id = self._next
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            msg = json.loads(self._ws.recv(deadline - time.monotonic()))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error'].get('message')}")
                return msg.get("result", {})
            self._event(msg)
        raise BrowserError(f"{method}: no answer in {self.timeout} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float | None = None, interval: float = 0.1) -> Any:
        """Poll ``expression`` until truthy (events keep being collected meanwhile)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression}")
            self._pump_until(lambda: False, interval, None)

    def screenshot(self, path: Path | None = None, *, full_page: bool = False) -> bytes:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.call("Page.captureScreenshot", params)["data"])
        if path is not None:
            Path(path).write_bytes(data)
        return data

    def _pump_until(self, done: Any, seconds: float, what: str | None) -> None:
        deadline = time.monotonic() + seconds
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                if what:
                    raise BrowserError(f"timed out waiting for {what}")
                return
            try:
                self._event(json.loads(self._ws.recv(left)))
            except TimeoutError:
                continue

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Page.loadEventFired":
            self.loaded = True
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
            if params.get("type") in ("error", "assert"):
                self.errors.append(f"console.{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console.append(f"log.{entry.get('level')}: {entry.get('text')}")
            if entry.get("level") == "error":
                self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed":
            self.errors.append(f"network: {params.get('errorText')} ({params.get('type')})")

    def close(self) -> None:
        self._ws.close()


class _WebSocket:
    """The client half of RFC 6455, enough for the DevTools protocol (text frames, masking, fragments)."""

    def __init__(self, url: str, timeout: float):
        assert url.startswith("ws://"), url
        hostport, _, path = url[5:].partition("/")
        host, _, port = hostport.partition(":")
        self._sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self._sock.sendall(request.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self._sock.recv(4096)
            if not chunk:
                raise BrowserError("DevTools closed the websocket during the handshake")
            head += chunk
        status, _, rest = head.partition(b"\r\n\r\n")
        if b" 101 " not in status.split(b"\r\n")[0]:
            raise BrowserError(f"websocket handshake failed: {status.splitlines()[0]!r}")
        self._buf = bytearray(rest)

    def send(self, text: str) -> None:
        payload = text.encode()
        header = bytearray([0x81])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 4096 else _mask(payload, mask)
        self._sock.sendall(bytes(header) + mask + masked)

    def recv(self, timeout: float) -> str:
        parts = []
        while True:
            fin, opcode, payload = self._frame(timeout)
            if opcode == 0x8:
                raise BrowserError("DevTools closed the websocket")
            if opcode == 0x9:  # ping -> pong
                continue
            parts.append(payload)
            if fin:
                return b"".join(parts).decode("utf-8", errors="replace")

    def _frame(self, timeout: float) -> tuple[bool, int, bytes]:
        """Parse one frame from the buffer, reading more until it is complete (a timeout keeps the buffer)."""
        deadline = time.monotonic() + timeout
        while True:
            parsed = self._parse()
            if parsed is not None:
                return parsed
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no DevTools message")
            self._sock.settimeout(left)
            chunk = self._sock.recv(1 << 20)  # raises TimeoutError (socket.timeout) with the buffer intact
            if not chunk:
                raise BrowserError("DevTools closed the connection")
            self._buf += chunk

    def _parse(self) -> tuple[bool, int, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        fin, opcode, n, pos = bool(buf[0] & 0x80), buf[0] & 0x0F, buf[1] & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack(">H", bytes(buf[2:4]))[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack(">Q", bytes(buf[2:10]))[0], 10
        masked = bool(buf[1] & 0x80)
        mask = bytes(buf[pos:pos + 4]) if masked else b""
        pos += 4 if masked else 0
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        return fin, opcode, _mask(payload, mask) if masked else payload

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass


def _mask(data: bytes, mask: bytes) -> bytes:
    import numpy as np

    arr = np.frombuffer(data, dtype=np.uint8)
    key = np.resize(np.frombuffer(mask, dtype=np.uint8), len(arr))
    return (arr ^ key).tobytes()
