"""Test helpers: images made on the fly, a loopback HTTP server, polling."""

from __future__ import annotations

import base64
import contextlib
import io
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw


def logo_png(size: int = 96, seed: int = 0) -> bytes:
    """A flat-colour picture: what vectorizing is for. `seed` makes distinct images."""
    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    shift = (seed * 7) % (size // 4)
    draw.ellipse((8 + shift, 8, size // 2 + shift, size // 2), fill=(220, 40, 40))
    draw.rectangle((size // 2, size // 2 - shift // 2, size - 8, size - 8), fill=(30, 90, 200))
    draw.polygon([(8, size - 8), (size // 3, size // 2), (size // 2, size - 8)], fill=(20, 160, 60))
    img.putpixel((0, 0), (seed % 256, seed // 256 % 256, 255))  # distinct bytes for each seed
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def image_manifest(folder: Path, seeds: list[int]) -> Path:
    """m.csv with rows r0..rN showing images/<seed>.png: equal seeds are duplicate images."""
    images = folder / "images"
    images.mkdir(exist_ok=True)
    for seed in set(seeds):
        (images / f"{seed}.png").write_bytes(logo_png(40, seed=seed))
    manifest = folder / "m.csv"
    with manifest.open("w") as handle:
        handle.write("id,image_url\n")
        handle.writelines(f"r{i},images/{seed}.png\n" for i, seed in enumerate(seeds))
    return manifest


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with a tiny (invalid-size) IDAT."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1: serves fixed routes and records POSTs."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.post_routes: dict[str, Route] = {}  # fixed answers to POSTs, by path
        self.posts: list[tuple[str, bytes]] = []
        self.requests: list[tuple[str, str]] = []
        self.post_status: Callable[[str], int] = lambda path: 200
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET(method="HEAD")

            def do_GET(self, method: str = "GET") -> None:
                owner.requests.append((method, self.path))
                route = owner.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.answer(route, method)

            def answer(self, route: Route, method: str) -> None:
                if route.delay_s:
                    time.sleep(route.delay_s)
                self.send_response(route.status)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if method != "HEAD":
                    with contextlib.suppress(OSError):
                        self.wfile.write(route.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                owner.requests.append(("POST", self.path))
                owner.posts.append((self.path, body))
                route = owner.post_routes.get(self.path.split("?")[0])
                if route is not None:
                    self.answer(route, "POST")
                    return
                status = owner.post_status(self.path)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url + path

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(predicate: Callable[[], Any], timeout_s: float = 60.0, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(interval_s)


def metric(client: httpx.Client, name: str, labels: str = "") -> float:
    """Read one sample from /metrics (exact name, optional `{...}` label text)."""
    text = client.get("/metrics").text
    wanted = f"{name}{labels}"
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted:
            return float(value)
    return 0.0


SUBMIT = "/api-pub/gw/v2/image/img2svg/async"
RESULTS = "/api-pub/gw/v2/image/img2svg/async/results"
BATCH = "/api-pub/gw/v2/image/img2svg/async/results/batch"
SYNC = "/api-pub/gw/v2/image/img2svg/sync"


def submit(api: httpx.Client, image: str, mode: str = "fast", **extra: Any) -> str:
    response = api.post(SUBMIT, json={"image": image, "mode": mode, **extra})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["code"] == 0, body
    assert len(body["result"]["sub_task_ids"]) == 1
    return body["result"]["task_id"]


def result_of(api: httpx.Client, task_id: str) -> dict[str, Any]:
    body = api.get(RESULTS, params={"task_id": task_id}).json()
    assert body["code"] == 0, body
    assert body["result"]["task_id"] == task_id
    (sub,) = body["result"]["sub_task_results"]
    return sub


def wait_terminal(api: httpx.Client, task_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        sub = result_of(api, task_id)
        return sub if sub["task_status"] in (1, 3, 4) else None

    return wait_for(done, timeout_s)
