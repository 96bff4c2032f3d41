"""A stand-in for HiDream's img2svg async API, written from its documentation alone.

Sources: ``/work/shared/docs/hidream-img2svg-api.md`` and the Chinese original it restates. It
shares no code with the project's own service (the thing tested against it) and listens on
127.0.0.1 only. Routes: submit, one result, batch results, and the signed download links.

Documented-but-odd behaviours reproduced (most switchable through :class:`Quirks`):

- business errors are HTTP 200 with ``code != 0``: body not JSON (like the docs' own curl body
  with its trailing comma), missing field, bad ``mode``, image not base64 of a picture, unknown
  task; an image given as an http(s) URL is accepted and never fetched;
- an HTTP error may carry a non-JSON body (500 ``<html>upstream error</html>``), and a submit
  answered 500 may still have created (and billed) its task; a submit can also be lost: task
  created and billed, connection closed with no answer;
- no idempotency: every processed POST is a new billed task; ``Idempotency-Key`` is ignored;
- ``sub_task_results`` is ``[]`` while a task waits; ids may be JSON integers and
  ``sub_task_ids`` ``null``; ids sent back as strings still match;
- status 0 -> 2 -> 1 / 3 / 4; ``task_completion`` is a float, but done reports the integer ``1``
  as in the docs' example; a failure (3) has a ``description``, a rejection (4) has none;
- a batch entry can fail on its own (``code`` 1, "busy, query later") in a successful answer;
- result URLs are short-lived signed links that answer 302 to a second signed link, and 403 with
  an XML body (like a cloud bucket) once expired or tampered with;
- the SVG starts with an XML declaration and a DOCTYPE;
- the 20 tasks/minute and concurrency limits answer 429 + ``Retry-After`` (that shape is not
  documented upstream: chosen here); ``message`` is Chinese unless ``X-accept-language: en``.

- ``notify_url``: when a task ends, its ``{main_task_id, sub_task_results}`` is POSTed there as
  JSON; only HTTP 200 counts, each attempt times out after 5 s, at most 3 attempts 1 s apart.
  ``callback_loss_rate`` drops some callbacks altogether (the docs warn they can be lost).

Not reproduced: the sync interface, token expiry, chunked request bodies.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import io
import json
import math
import random
import socket
import threading
import time
import urllib.request
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

API = "/api-pub/gw/v2/image/img2svg/async"
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
DOCTYPE = (
    '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
    '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
)
URL_IMAGE_SIZE = (256, 256)  # an image given by URL is never fetched: its size is made up
UPSTREAM_ERROR = b"<html>upstream error</html>"
BUCKET_ERROR = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{}</Code><Key>{}</Key></Error>'
MESSAGES: dict[str, tuple[int, str, str]] = {  # key: (code, English, Chinese)
    "ok": (0, "Success", "Success"),
    "auth": (401, "invalid or missing token", "token 无效或缺失"),
    "json": (1001, "request body is not valid JSON", "请求体不是合法的 JSON"),
    "field": (1002, "missing or invalid field: {}", "缺少参数或参数无效: {}"),
    "mode": (1003, "mode must be 'fast' or 'slow'", "mode 只支持 'fast' 和 'slow'"),
    "image": (1004, "image is not base64 of a picture", "image 不是合法图片的 base64"),
    "many": (1005, "task_id_list holds more than 100 ids", "task_id_list 最多 100 个"),
    "notfound": (404, "task not found", "任务不存在"),
    "rate": (429, "too many requests, retry later", "请求过于频繁,请稍后再试"),
    "busy": (1, "busy, query later", "busy, query later"),
}


@dataclass(frozen=True)
class Quirks:
    """How the stand-in behaves; see the module docstring and the brief of each field."""

    seed: int = 0
    token: str | None = None  # require "Authorization: Bearer <token>" (else 401)
    processing_s: float = 0.3  # status 0 for a third of this, then 2, then terminal
    integer_ids: bool = False
    null_sub_task_ids: bool = False
    empty_while_pending: bool = True
    error_rate: float = 0.0  # API requests answered 500 with an HTML body
    lose_rate: float = 0.0  # submits created and billed, then dropped without an answer
    fail_before_create_rate: float = 0.0  # submits answered 500 (HTML) with no task created
    callback_loss_rate: float = 0.0  # ended tasks whose notify_url is never called
    batch_entry_error_rate: float = 0.0
    fail_task_rate: float = 0.0  # tasks ending with status 3
    reject_task_rate: float = 0.0  # tasks ending with status 4
    redirect: bool = True  # the result URL answers 302 to a second signed link
    url_ttl_s: float = 30.0
    doctype: bool = True
    rate_per_minute: int | None = None
    max_in_flight: int | None = None
    # SVGs carrying a <script>, an onload= handler and an <image> linking an external URL;
    # failure descriptions that a spreadsheet would run as a formula
    malicious: bool = False


@dataclass
class _Task:
    task_id: str | int
    sub_task_id: str | int
    created: float  # time.monotonic()
    outcome: int  # terminal task_status: 1, 3 or 4
    size: tuple[int, int]
    colour: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    standin: HiDreamStandIn  # set on a per-instance subclass

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.standin._dispatch(self, "GET")

    def do_POST(self) -> None:
        self.standin._dispatch(self, "POST")

    def send(
        self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": ctype, **(extra or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class HiDreamStandIn:
    """``with HiDreamStandIn(Quirks(...)) as api:`` serves the API at ``api.url``."""

    def __init__(self, quirks: Quirks | None = None) -> None:
        self.quirks = quirks or Quirks()
        self._rng = random.Random(self.quirks.seed)
        self._lock = threading.Lock()
        self._key = self._rng.randbytes(32)
        self._tasks: dict[str, _Task] = {}
        self._subs: dict[str, _Task] = {}
        self._recent: deque[float] = deque()  # creation times of tasks in the last minute
        self._server: ThreadingHTTPServer | None = None
        self.url = ""
        self.submit_posts = 0
        self.tasks_created = 0
        self.tasks_per_image: Counter[str] = Counter()
        self.downloads = 0
        self.expired_downloads = 0
        self.callbacks_delivered = 0
        self.callbacks_lost = 0

    def __enter__(self) -> HiDreamStandIn:
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()  # returns once serve_forever has stopped
            self._server.server_close()

    def max_tasks_per_image(self) -> int:
        with self._lock:
            return max(self.tasks_per_image.values(), default=0)

    def _dispatch(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        route = (method, url.path)
        if route == ("POST", API):
            self._submit(h, raw)
        elif route == ("GET", f"{API}/results"):
            self._guarded(h, lambda: self._result(h, parse_qs(url.query)))
        elif route == ("POST", f"{API}/results/batch"):
            self._guarded(h, lambda: self._batch(h, raw))
        elif method == "GET" and url.path.startswith(("/r/", "/cdn/")):
            self._download(h, url.path, parse_qs(url.query))
        else:
            h.send(404, b'{"code": 404, "message": "not found"}', "application/json")

    @staticmethod
    def _message(h: _Handler, key: str) -> str:
        _, en, zh = MESSAGES[key]
        return en if h.headers.get("X-accept-language", "zh").strip().lower() == "en" else zh

    def _reply(self, h: _Handler, key: str, result: Any = None, *args: object) -> None:
        with self._lock:
            request_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        code, message = MESSAGES[key][0], self._message(h, key).format(*args)
        body = {"code": code, "message": message, "request_id": request_id, "result": result}
        status, extra = (429, {"Retry-After": "1"}) if key == "rate" else (200, None)
        h.send(status, json.dumps(body).encode(), "application/json", extra)

    def _authorized(self, h: _Handler) -> bool:
        got, token = h.headers.get("Authorization", ""), self.quirks.token
        if token is None or hmac.compare_digest(got.encode(), f"Bearer {token}".encode()):
            return True
        body = {"code": 401, "message": self._message(h, "auth")}
        h.send(401, json.dumps(body).encode(), "application/json")
        return False

    def _guarded(self, h: _Handler, handle: Any) -> None:
        if not self._authorized(h):
            return
        with self._lock:
            failed = self._rng.random() < self.quirks.error_rate
        if failed:
            h.send(500, UPSTREAM_ERROR, "text/html")
        else:
            handle()

    @staticmethod
    def _json(raw: bytes) -> dict[str, Any] | None:
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _submit(self, h: _Handler, raw: bytes) -> None:
        with self._lock:
            self.submit_posts += 1
        if not self._authorized(h):
            return None
        if (body := self._json(raw)) is None:
            return self._reply(h, "json")
        image, mode, notify = body.get("image"), body.get("mode"), body.get("notify_url", "")
        for name, value in (("image", image), ("mode", mode), ("notify_url", notify or "-")):
            if not isinstance(value, str) or not value:
                return self._reply(h, "field", None, name)
        if mode not in ("fast", "slow"):
            return self._reply(h, "mode")
        if (decoded := _decode(str(image))) is None:
            return self._reply(h, "image")
        key, q, rng = hashlib.sha256(str(image).encode()).hexdigest(), self.quirks, self._rng
        with self._lock:  # check the limits and create the task atomically
            now = time.monotonic()
            limited = self._over_limit(now)
            error = not limited and rng.random() < q.error_rate + q.fail_before_create_rate
            created = not limited and (
                not error
                or (rng.random() < q.error_rate / 2 / (q.error_rate + q.fail_before_create_rate))
            )  # a 500 comes after creating the task (half of error_rate) or before it
            lost = created and not error and rng.random() < q.lose_rate
            task = self._create(now, key, *decoded) if created else None
            call_back = task is not None and notify != "" and rng.random() >= q.callback_loss_rate
        if call_back:
            assert task is not None
            threading.Thread(target=self._call_back, args=(task, notify), daemon=True).start()
        if limited:
            return self._reply(h, "rate")
        if error:
            return h.send(500, UPSTREAM_ERROR, "text/html")
        if lost:  # billed, but no answer at all
            h.close_connection = True
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)
            return None
        assert task is not None
        ids = None if q.null_sub_task_ids else [task.sub_task_id]
        return self._reply(h, "ok", {"task_id": task.task_id, "sub_task_ids": ids})

    def _call_back(self, task: _Task, url: str) -> None:
        """POST the task's end to its notify_url, as HiDream documents it."""
        time.sleep(self.quirks.processing_s)
        with self._lock:
            body = {"main_task_id": task.task_id,
                    "sub_task_results": self._sub_results(task, time.monotonic())}  # fmt: skip
        request = urllib.request.Request(
            url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        for attempt in range(3):
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:
                    if answer.status == 200:
                        with self._lock:
                            self.callbacks_delivered += 1
                        return
            except (OSError, ValueError):
                pass
            if attempt < 2:
                time.sleep(1)
        with self._lock:
            self.callbacks_lost += 1

    def _result(self, h: _Handler, query: dict[str, list[str]]) -> None:
        if not (task_id := query.get("task_id", [""])[0]):
            return self._reply(h, "field", None, "task_id")
        with self._lock:
            task = self._tasks.get(task_id)
            results = None if task is None else self._sub_results(task, time.monotonic())
        if task is None:
            return self._reply(h, "notfound")
        return self._reply(h, "ok", {"task_id": task.task_id, "sub_task_results": results})

    def _batch(self, h: _Handler, raw: bytes) -> None:
        if (body := self._json(raw)) is None:
            return self._reply(h, "json")
        ids = body.get("task_id_list")
        if not isinstance(ids, list) or any(type(i) not in (str, int) for i in ids):
            return self._reply(h, "field", None, "task_id_list")
        if len(ids) > 100:
            return self._reply(h, "many")
        entries: list[dict[str, Any]] = []
        with self._lock:
            now = time.monotonic()
            for task_id in ids:
                task = self._tasks.get(str(task_id))
                entry: dict[str, Any] = {"task_id": task_id if task is None else task.task_id}
                if task is None or self._rng.random() < self.quirks.batch_entry_error_rate:
                    key = "notfound" if task is None else "busy"
                    entry |= {"code": MESSAGES[key][0], "message": self._message(h, key)}
                    entries.append(entry | {"sub_task_results": []})
                else:
                    entries.append(entry | {"sub_task_results": self._sub_results(task, now)})
        return self._reply(h, "ok", entries)

    def _download(self, h: _Handler, path: str, query: dict[str, list[str]]) -> None:
        kind, _, name = path.lstrip("/").partition("/")
        sub_id = name.removesuffix(".svg")
        exp, sig = query.get("exp", [""])[0], query.get("sig", [""])[0]
        signed = exp.isdigit() and hmac.compare_digest(
            sig.encode(), self._sign(kind, sub_id, int(exp)).encode()
        )
        if not signed or time.time() > int(exp):
            with self._lock:
                self.expired_downloads += 1
            code = "AccessDenied" if signed else "SignatureDoesNotMatch"
            return h.send(403, BUCKET_ERROR.format(code, name).encode(), "application/xml")
        task = self._subs.get(sub_id)
        if task is None or task.outcome != 1:
            return h.send(404, BUCKET_ERROR.format("NoSuchKey", name).encode(), "application/xml")
        if kind == "r":
            return h.send(302, b"", "text/plain", {"Location": self._signed("cdn", sub_id)})
        with self._lock:
            self.downloads += 1
        return h.send(200, self._svg(task).encode(), "image/svg+xml")

    def _over_limit(self, now: float) -> bool:
        q = self.quirks
        while self._recent and now - self._recent[0] >= 60:
            self._recent.popleft()
        if q.rate_per_minute is not None and len(self._recent) >= q.rate_per_minute:
            return True
        busy = sum(1 for t in self._tasks.values() if now - t.created < q.processing_s)
        return q.max_in_flight is not None and busy >= q.max_in_flight

    def _new_id(self) -> str | int:
        if self.quirks.integer_ids:
            return self._rng.randrange(10**17, 10**18)
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _create(self, now: float, key: str, size: tuple[int, int], source: bytes) -> _Task:
        roll = self._rng.random() - self.quirks.fail_task_rate
        outcome = 3 if roll < 0 else 4 if roll < self.quirks.reject_task_rate else 1
        colour = "#" + hashlib.sha256(source).hexdigest()[:6]
        task = _Task(self._new_id(), self._new_id(), now, outcome, size, colour)
        self._tasks[str(task.task_id)] = self._subs[str(task.sub_task_id)] = task
        self.tasks_created += 1
        self.tasks_per_image[key] += 1
        self._recent.append(now)
        return task

    def _sub_results(self, task: _Task, now: float) -> list[dict[str, Any]]:
        p, elapsed = self.quirks.processing_s, now - task.created
        if elapsed < p / 3:
            if self.quirks.empty_while_pending:
                return []
            status, completion = 0, 0.0
        elif elapsed < p:
            status, completion = 2, min(0.99, round((elapsed - p / 3) / (p * 2 / 3), 2))
        else:
            status, completion = task.outcome, 1 if task.outcome == 1 else 0.0
        entry: dict[str, Any] = {"sub_task_id": task.sub_task_id, "task_status": status}
        entry |= {"task_completion": completion, "image": ""}
        if status == 1:
            entry["image"] = self._signed("r" if self.quirks.redirect else "cdn", task.sub_task_id)
        elif status == 3:
            entry["description"] = "vectorization failed: the picture could not be traced"
            if self.quirks.malicious:
                entry["description"] = '=HYPERLINK("http://127.0.0.1:9/","vectorization failed")'
        return [entry]

    def _sign(self, kind: str, sub_id: str, exp: int) -> str:
        message = f"{kind}/{sub_id}.svg?exp={exp}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def _signed(self, kind: str, sub_id: str | int) -> str:
        exp = math.ceil(time.time() + self.quirks.url_ttl_s)
        return f"{self.url}/{kind}/{sub_id}.svg?exp={exp}&sig={self._sign(kind, str(sub_id), exp)}"

    def _svg(self, task: _Task) -> str:
        w, h = task.size
        head = XML_DECL + DOCTYPE if self.quirks.doctype else ""
        onload, extra = "", ""
        if self.quirks.malicious:
            onload = ' onload="alert(1)"'
            extra = '<script>alert(2)</script><image href="http://127.0.0.1:9/x.png" width="1"/>'
        return head + (
            f'<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}"{onload}><rect width="{w}" height="{h}" '
            f'fill="{task.colour}"/>{extra}</svg>\n'
        )


def _decode(image: str) -> tuple[tuple[int, int], bytes] | None:
    """(size, bytes that pick the colour) of a submitted image, or None when it is not one."""
    if image.startswith(("http://", "https://")):
        return URL_IMAGE_SIZE, image.encode()
    if image.startswith("data:"):
        header, sep, image = image.partition(",")
        if not sep or not header.endswith(";base64"):
            return None
    try:
        raw = base64.b64decode("".join(image.split()), validate=True)
        with Image.open(io.BytesIO(raw)) as picture:
            return picture.size, raw
    except (ValueError, OSError, Image.DecompressionBombError):
        return None
