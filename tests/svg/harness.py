"""Open SVG documents in headless Chromium the four ways a stored SVG reaches a web page, and
see whether anything in them ran or loaded.

The four ways, each a fresh navigation of the one page target a browser holds:

- `file`: the SVG opened as a document from a file:// URL (a download, "open image in new
  tab"): the XML parser builds it; `<script>` runs, XHTML elements load.
- `inline`: an HTML page fetches the SVG's text and sets it as a `<div>`'s `innerHTML` (a front
  end showing an SVG it got from an API): the HTML fragment parser builds it; handlers run,
  `<script>` does not.
- `pasted`: a `text/html` page with the SVG's bytes pasted into its `<body>` by the server (a
  template): the HTML parser builds it, and `<script>` runs as well.
- `img`: `<img src=the.svg>`, the image context, where nothing may run or load.

Each open: navigate, wait for the load event (and, inline, for the page's ready flag), let the
pointer move over the picture and click it, let things settle, then go to about:blank (so
`onunload` handlers run, and late loads are cut off, inside the open they belong to) and close
any window the page opened (a popup in front would throttle the page's timers and animations).

A document "fires" when any of these is seen: the `__fired` binding called (a payload's
`FIRE('id')`), a JavaScript dialog opened, a request reaching the leak server, a request the
browser sent that is neither the page under test nor a URL the harness fetched for it nor a
`data:` URI (nor a `javascript:` URL, which matters only if it runs, and then the binding
says so), or a new window. The leak server sees what the page's own DevTools session cannot:
requests of other processes (a cross-site iframe, a popup).

Corpus files hold two placeholders, filled in by `Entry.render`: `LEAK_URL` becomes
`http://127.0.0.1:<leak port>/<phase>/<file stem>` (phase `stored`, or `raw-<mode>`), so
every leak names its document and which copy it came from; `FIRE(` becomes a call of the
binding, or of `alert` where a frame has none. Payload ids are the file stem, optionally
followed by `/...`. Every hostile document draws a 200x200 shape at its origin, where the
pointer goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.quality.chromium import Chromium

CORPUS = Path(__file__).resolve().parent / "corpus"
BENIGN = CORPUS / "benign"
INDEX = CORPUS / "index.json"
MODES = ("file", "inline", "pasted", "img")
CLASSES = ("css", "parser", "smil", "ref", "on", "dtd")
BINDING = "__fired"
FIRE_CALL = f"(window.{BINDING}||alert)("
# A visitor's pointer arrives a moment after the page shows (by then a SMIL animation that
# rewrites a link has run: clicking sooner would race it), and what a document does is given
# time to land: SMIL `begin="0s"` events, CSS animation and transition events, autofocus, a
# javascript: link's navigation; each comes within a few frames of the load event or click.
BEFORE_POINTER_S = 0.1
SETTLE_S = 0.2
POINTER = (60, 60)  # inside the 200x200 shape every hostile document draws at its origin
# The id a payload reports with: FIRE('id') or alert('id'), whatever quoting it hides behind.
_IDS = re.compile(r"""(?:FIRE|alert)\((?:'|"|%22|%27|&quot;|&#34;|&#39;)([a-z0-9][\w/.-]*)""")


@dataclass(frozen=True)
class Entry:
    """One hostile corpus document, as the index describes it."""

    name: str
    klass: str
    description: str
    fires_raw: bool
    fires_raw_in: tuple[str, ...]
    template: str

    def render(self, leak_origin: str, phase: str) -> bytes:
        """The document's bytes with its placeholders filled in for this run and phase."""
        text = self.template.replace("LEAK_URL", f"{leak_origin}/{phase}/{self.name}")
        return text.replace("FIRE(", FIRE_CALL).encode()

    def ids(self) -> set[str]:
        """The ids its payloads report with."""
        return set(_IDS.findall(self.template))


def load_corpus(folder: Path = CORPUS) -> list[Entry]:
    """Every hostile document with its index entry; a file missing from the index, or an index
    entry without its file, is an error, so the two cannot drift apart."""
    index: dict[str, dict[str, Any]] = json.loads((folder / "index.json").read_text())
    files = {path.stem: path for path in folder.glob("*.svg")}
    if set(files) != set(index):
        raise ValueError(
            f"corpus files and index differ: only files {sorted(set(files) - set(index))},"
            f" only index {sorted(set(index) - set(files))}"
        )
    return [
        Entry(
            name=name,
            klass=meta["class"],
            description=meta["description"],
            fires_raw=meta["fires_raw"],
            fires_raw_in=tuple(meta["fires_raw_in"]),
            template=files[name].read_text(),
        )
        for name, meta in sorted(index.items())
    ]


def load_benign(folder: Path = BENIGN) -> dict[str, bytes]:
    return {path.stem: path.read_bytes() for path in sorted(folder.glob("*.svg"))}


@dataclass
class Observation:
    """What one open showed."""

    bindings: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    popups: list[str] = field(default_factory=list)

    def seen(self) -> list[tuple[str, list[Any]]]:
        """Each detector that saw something, with what it saw."""
        return [
            (name, values)
            for name, values in (
                ("binding", self.bindings),
                ("dialog", self.dialogs),
                ("leak", self.leaks),
                ("request", self.requests),
                ("popup", self.popups),
            )
            if values
        ]

    def fired(self) -> bool:
        return bool(self.seen())

    def detectors(self) -> set[str]:
        """Which detectors saw something: binding, dialog, leak, request, popup."""
        return {name for name, _ in self.seen()}

    def summary(self) -> str:
        return ", ".join(f"{name}={values}" for name, values in self.seen()) or "nothing"


def id_owner(payload: str) -> str:
    """The document a payload id (`name` or `name/...`) belongs to."""
    return payload.split("/", 1)[0]


def leak_owner(path: str) -> tuple[str, str]:
    """(phase, document) of a leak server path `/<phase>/<name>/...`; ('', '') if it has none."""
    parts = path.lstrip("/").split("/")
    return (parts[0], parts[1]) if len(parts) >= 2 else ("", "")


def split_by_owner(seen: Observation) -> dict[str, Observation]:
    """Attribute a batch's observation to documents by the ids and leak paths in it; a request
    or window that names no document goes to the key ''."""
    parts: dict[str, Observation] = {}

    def part(name: str) -> Observation:
        return parts.setdefault(name, Observation())

    for payload in seen.bindings:
        part(id_owner(payload)).bindings.append(payload)
    for message in seen.dialogs:
        part(id_owner(message)).dialogs.append(message)
    for path in seen.leaks:
        part(leak_owner(path)[1]).leaks.append(path)
    part("").requests.extend(seen.requests)
    part("").popups.extend(seen.popups)
    return parts


class Server:
    """A threaded HTTP server on 127.0.0.1 answering every request with `answer(path)`."""

    def __init__(self, answer: Callable[[str], tuple[int, str, bytes]]) -> None:
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.paths.append(self.path)
                status, content_type, body = answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                with contextlib.suppress(OSError):  # the browser navigated away mid-answer
                    self.wfile.write(body)

            do_POST = do_GET

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def leak_server() -> Server:
    """Records every path asked for; answers with nothing (204), which is all a leak needs."""
    return Server(lambda path: (204, "text/plain", b""))


_HEAD = '<!doctype html><html><head><meta charset="utf-8"><title>svg</title></head><body>'


class PageServer(Server):
    """Serves the documents under test (`/svg/<key>.svg`) and the HTML pages that show them:
    `/inline/<key>`, `/pasted/<key>`, `/img/<key>`, and batch pages listing keys after `?`."""

    def __init__(self) -> None:
        self.documents: dict[str, bytes] = {}
        super().__init__(self._answer)

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        route, _, query = path.partition("?")
        kind, _, key = route.strip("/").partition("/")
        keys = [urllib.parse.unquote(k) for k in query.split(",") if k]
        if kind == "svg" and key.endswith(".svg") and key[:-4] in self.documents:
            return 200, "image/svg+xml", self.documents[key[:-4]]
        page = self._page(kind, key, keys)
        if page is None:
            return 404, "text/plain", b""
        return 200, "text/html; charset=utf-8", page

    def _page(self, kind: str, key: str, keys: list[str]) -> bytes | None:
        if kind == "pasted" and key in self.documents:
            return _HEAD.encode() + self.documents[key] + b"\n</body></html>"
        if kind == "inline" and key in self.documents:
            return inline_page([key])
        if kind == "img" and key in self.documents:
            return img_page([key])
        if kind == "batch-inline":
            return inline_page(keys)
        if kind == "batch-img":
            return img_page(keys)
        if kind == "batch-pasted":
            return frames_page(f"/pasted/{k}" for k in keys)
        return None


def inline_page(keys: list[str]) -> bytes:
    """Fetch each SVG's text and set it as the innerHTML of a <div> of its own (one fragment
    parse per document, so one document's markup cannot swallow the next)."""
    return f"""{_HEAD}<script>
Promise.all({json.dumps(keys)}.map(async key => {{
  const text = await (await fetch(`/svg/${{key}}.svg`)).text();
  const host = document.createElement("div");
  document.body.append(host);
  host.innerHTML = text;
}})).finally(() => {{ document.body.dataset.ready = "1"; }});
</script></body></html>""".encode()


def img_page(keys: list[str]) -> bytes:
    images = "".join(f'<img src="/svg/{key}.svg" style="display:block">' for key in keys)
    return f"{_HEAD}{images}</body></html>".encode()


def frames_page(urls: Iterable[str]) -> bytes:
    frames = "".join(f'<iframe width="220" height="220" src="{url}"></iframe>' for url in urls)
    return f"{_HEAD}{frames}</body></html>".encode()


@dataclass
class Harness:
    """One browser (one lane), sharing the leak server, page server and document folder."""

    browser: Chromium
    leak: Server
    pages: PageServer
    folder: Path
    opens: int = 0

    def publish(self, key: str, data: bytes) -> None:
        """Make `data` openable under `key` (like `raw/css-x`) in every mode."""
        self.pages.documents[key] = data
        path = self.folder / f"{key}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def url(self, key: str, mode: str) -> str:
        if mode == "file":
            return (self.folder / f"{key}.svg").as_uri()
        return f"{self.pages.origin}/{mode}/{key}"

    async def open(self, key: str, mode: str, leak_prefixes: Iterable[str]) -> Observation:
        """One fresh navigation showing one document. Leaks count when their path starts with
        one of `leak_prefixes` (the document's own LEAK_URL paths), so other lanes' leaks are
        not taken for this one's."""
        own = {self.url(key, mode)}
        if mode in ("inline", "img"):
            own.add(f"{self.pages.origin}/svg/{key}.svg")
        return await self._visit(self.url(key, mode), own, leak_prefixes, mode == "inline")

    async def open_batch(
        self, keys: list[str], mode: str, leak_prefixes: Iterable[str]
    ) -> Observation:
        """Several documents on one page, for the raw self-test, where every payload names its
        document: `file` as file:// iframes of a file:// page, `pasted` as iframes of pasted
        pages, `inline` as one <div> per document, `img` as one <img> per document."""
        if mode == "file":
            page = self.folder / f"batch-{id(self)}-{self.opens}.html"
            page.write_bytes(frames_page((self.folder / f"{key}.svg").as_uri() for key in keys))
            url = page.as_uri()
            own = {url} | {(self.folder / f"{key}.svg").as_uri() for key in keys}
        else:
            query = ",".join(urllib.parse.quote(key, safe="/") for key in keys)
            url = f"{self.pages.origin}/batch-{mode}/?{query}"
            own = {url}
            if mode in ("inline", "img"):
                own |= {f"{self.pages.origin}/svg/{key}.svg" for key in keys}
            if mode == "pasted":
                own |= {f"{self.pages.origin}/pasted/{key}" for key in keys}
        return await self._visit(url, own, leak_prefixes, mode == "inline")

    async def _visit(
        self, url: str, own: set[str], leak_prefixes: Iterable[str], wait_ready: bool
    ) -> Observation:
        browser = self.browser
        prefixes = tuple(leak_prefixes)
        self.opens += 1
        browser.clear()
        leaks_before = len(self.leak.paths)
        try:
            await browser.navigate(url, timeout_s=10)
            if wait_ready:
                await _wait_ready(browser)
        except TimeoutError:
            pass  # a page that never finishes loading is still inspected: what it did counts
        await asyncio.sleep(BEFORE_POINTER_S)
        await _poke(browser)
        await asyncio.sleep(SETTLE_S)
        with contextlib.suppress(TimeoutError):
            await browser.navigate("about:blank", timeout_s=10)
        closed = await browser.close_other_pages()
        return Observation(
            bindings=browser.binding_calls(BINDING),
            dialogs=list(browser.dialogs),
            leaks=[path for path in self.leak.paths[leaks_before:] if path.startswith(prefixes)],
            requests=[
                request
                for request in browser.requests()
                if request.split("#")[0] not in own and not _harmless(request, self.pages.origin)
            ],
            popups=[
                event["params"]["url"]
                for event in browser.events
                if event["method"] == "Page.windowOpen"
            ]
            + closed,
        )


def _harmless(url: str, pages_origin: str) -> bool:
    """data: URIs carry no request, and a javascript: one only matters if it runs (which the
    binding sees); the favicon is the browser's own doing."""
    return (
        url.startswith(("data:", "about:", "javascript:")) or url == f"{pages_origin}/favicon.ico"
    )


async def _wait_ready(browser: Chromium, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = await browser.evaluate(
            "document.body !== null && document.body.dataset.ready === '1'"
        )
        if ready:
            return
        await asyncio.sleep(0.01)
    raise TimeoutError("the inline page did not finish")


async def _poke(browser: Chromium) -> None:
    """What a visitor does: the pointer passes over the picture and clicks it."""
    x, y = POINTER
    await browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
    for kind in ("mousePressed", "mouseReleased"):
        await browser.send(
            "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
        )


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def start_browser(binary: str, profile: Path) -> Chromium:
    """A browser with the loopback servers reachable and the binding exposed to every frame;
    the caller ends it with `await browser.__aexit__()`."""
    browser = Chromium(binary, profile, width=800, height=600, loopback=True)
    await browser.__aenter__()
    try:
        await browser.add_binding(BINDING)
    except BaseException:
        await browser.__aexit__()
        raise
    return browser


@dataclass(frozen=True)
class Job:
    """Open `keys` in each of `modes` (one key: a document of its own; several: a batch page),
    counting leaks under `leak_prefixes` as theirs."""

    keys: tuple[str, ...]
    modes: tuple[str, ...]
    leak_prefixes: tuple[str, ...]


async def run_jobs(lanes: list[Harness], jobs: list[Job]) -> dict[Job, dict[str, Observation]]:
    """Every job's opens, spread over the lanes (browsers) working side by side: most of an
    open is waiting for the document to settle, so lanes overlap well even on two cores. A
    job's modes stay in one lane, one after the other, so its leaks cannot be confused."""
    queue: asyncio.Queue[Job] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    found: dict[Job, dict[str, Observation]] = {}

    async def lane(run: Harness) -> None:
        while not queue.empty():
            job = queue.get_nowait()
            found[job] = {}
            for mode in job.modes:
                if len(job.keys) == 1:
                    seen = await run.open(job.keys[0], mode, job.leak_prefixes)
                else:
                    seen = await run.open_batch(list(job.keys), mode, job.leak_prefixes)
                found[job][mode] = seen

    await asyncio.gather(*(lane(run) for run in lanes))
    return found
