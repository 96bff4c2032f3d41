"""The report page's inline stylesheet and script, kept apart from the Python that fills it.

The script builds every row from the embedded JSON block with `createElement` and
`textContent`, never `innerHTML`, so no manifest text is ever parsed as markup; the page's CSP
allows only these two blocks (by hash) to run or style anything.

What the script exposes for tests and for people:

* rows are rendered 200 a page per section; `#all` in the URL (or "Show all") renders every one;
* each row element carries `data-row-id`; a failure's reason is in its `.reason` element;
* once rendered and every thumbnail decoded, `body` gets `data-ready="1"`,
  `data-images` (thumbnails on the page), `data-broken-images` (those that did not decode)
  and `data-render-ms` (milliseconds from navigation start to that moment).
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { color-scheme: light; --bad: #b3261e; --ok: #1e6b34; --line: #d9d9d9; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 16px; }
h1 { margin: 0 0 4px; font-size: 22px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.meta, .note { color: #555; } .note { background: #fff4d6; padding: 6px 10px; }
.summary { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
table.counts { border-collapse: collapse; } table.counts td, table.counts th
  { border-bottom: 1px solid var(--line); padding: 2px 10px; text-align: left; }
table.counts td.n { text-align: right; font-variant-numeric: tabular-nums; }
.histogram text { font-size: 10px; fill: #555; } .histogram .low { fill: var(--bad); }
.histogram rect { fill: #4a78c2; } .histogram .threshold { stroke: var(--bad); }
.controls { position: sticky; top: 0; background: #fff; padding: 8px 0;
  border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: center; }
.pager { margin: 6px 0; display: flex; gap: 8px; align-items: center; }
.row { display: grid; grid-template-columns: 104px 104px 1fr; gap: 12px;
  border-bottom: 1px solid var(--line); padding: 8px 0; align-items: start; }
.row.failure { grid-template-columns: 1fr; }
.row.zoomed { grid-template-columns: 104px 104px 104px 104px 1fr; }
img.thumb.zoom { image-rendering: auto; outline: 2px solid var(--line); }
.thumb { width: 96px; height: 96px; object-fit: contain; border: 1px solid var(--line);
  background: #fff; display: flex; align-items: center; justify-content: center; color: #999;
  font-size: 11px; }
.id { font-family: ui-monospace, monospace; font-weight: 600; }
.image { font-family: ui-monospace, monospace; word-break: break-all; color: #333; }
.reason { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
.scores span { margin-right: 14px; } .flag { background: #fde2e0; color: var(--bad);
  border-radius: 3px; padding: 0 6px; margin-right: 6px; font-size: 12px; }
.status { font-size: 12px; padding: 0 6px; border-radius: 3px; background: #eee; }
"""

SCRIPT = """
(() => {
  "use strict";
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const pages = { failures: 0, rows: 0 };
  const statusFilter = document.getElementById("filter-status");
  const flagFilter = document.getElementById("filter-flag");

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function showAll() { return location.hash === "#all"; }
  function matches(row) {
    if (statusFilter.value && row.status !== statusFilter.value) return false;
    if (flagFilter.value === "-") return row.flags.length === 0;
    return !flagFilter.value || row.flags.includes(flagFilter.value);
  }
  function bytes(n) {
    if (n === null || n === undefined) return "?";
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KB";
    return (n / 1048576).toFixed(1) + " MB";
  }
  function thumb(uri, label) {
    if (!uri) return el("div", "thumb", "no " + label);
    const img = el("img", "thumb");
    img.alt = label;
    img.width = 96;
    img.height = 96;
    img.decoding = "async";
    img.src = uri;
    return img;
  }
  function header(row) {
    const head = el("div");
    head.append(el("span", "id", row.id), " ", el("span", "status", row.status));
    return head;
  }
  function failure(row) {
    const node = el("article", "row failure");
    node.dataset.rowId = row.id;
    node.dataset.status = row.status;
    node.append(header(row), el("div", "image", row.image),
      el("div", "reason", row.error || "(no reason recorded)"));
    return node;
  }
  function converted(row) {
    const node = el("article", "row");
    node.dataset.rowId = row.id;
    node.dataset.status = row.status;
    if (row.ssim !== null) node.dataset.ssim = String(row.ssim);
    const details = el("div");
    const scores = el("div", "scores");
    const psnr = row.psnr === "inf" ? "\\u221e" : row.psnr === null ? "?" : row.psnr.toFixed(1);
    scores.append(
      el("span", "", "SSIM " + (row.ssim === null ? "not scored" : row.ssim.toFixed(3))),
      el("span", "", "PSNR " + psnr + " dB"),
      el("span", "", row.paths === null ? "? elements"
        : row.paths + (row.paths === 1 ? " element" : " elements")),
      el("span", "", "SVG " + bytes(row.svg_bytes) + " / source " + bytes(row.source_bytes)));
    const flags = el("div");
    for (const flag of row.flags) flags.append(el("span", "flag", flag));
    details.append(header(row), el("div", "image", row.image), scores, flags);
    if (row.error) details.append(el("div", "reason", row.error));
    if (row.href) {
      const link = el("a", "", "open SVG");
      link.href = row.href;
      details.append(link);
    }
    node.append(thumb(row.source_thumb, "source"), thumb(row.svg_thumb, "SVG"));
    if (row.source_zoom || row.svg_zoom) {  // one region at 4x: facets and halos show here
      node.classList.add("zoomed");
      node.append(thumb(row.source_zoom, "source at 4x"), thumb(row.svg_zoom, "SVG at 4x"));
    }
    node.append(details);
    return node;
  }
  function pager(name, page, count, total) {
    const bar = el("div", "pager");
    if (showAll()) {
      bar.append(el("span", "", "all " + total + " shown "));
      const less = el("button", "", "Show pages");
      less.addEventListener("click", () => { location.hash = ""; });
      bar.append(less);
      return bar;
    }
    const prev = el("button", "", "\\u2190 previous");
    const next = el("button", "", "next \\u2192");
    prev.disabled = page === 0;
    next.disabled = page >= count - 1;
    prev.addEventListener("click", () => { pages[name] = page - 1; render(); });
    next.addEventListener("click", () => { pages[name] = page + 1; render(); });
    const all = el("button", "", "Show all");
    all.addEventListener("click", () => { location.hash = "#all"; });
    bar.append(prev, el("span", "", "page " + (page + 1) + " of " + Math.max(count, 1)
      + " (" + total + " rows)"), next, all);
    return bar;
  }
  function section(name, rows, make) {
    const root = document.getElementById(name);
    const kept = rows.filter(matches);
    const count = Math.ceil(kept.length / data.page_size);
    const page = Math.min(pages[name], Math.max(count - 1, 0));
    pages[name] = page;
    const shown = showAll() ? kept : kept.slice(page * data.page_size, (page + 1) * data.page_size);
    const list = root.querySelector(".list");
    const fragment = document.createDocumentFragment();
    for (const row of shown) fragment.append(make(row));
    list.replaceChildren(fragment);
    root.querySelector(".pager").replaceWith(pager(name, page, count, kept.length));
  }
  async function render() {
    document.body.dataset.ready = "0";
    section("failures", data.failures, failure);
    section("rows", data.rows, converted);
    const images = Array.from(document.images);
    await Promise.all(images.map((img) => img.decode().catch(() => null)));
    const broken = images.filter((img) => !img.complete || img.naturalWidth === 0).length;
    document.body.dataset.images = String(images.length);
    document.body.dataset.brokenImages = String(broken);
    document.body.dataset.renderMs = String(Math.round(performance.now()));
    document.body.dataset.ready = "1";
  }
  statusFilter.addEventListener("change", () => { pages.failures = pages.rows = 0; render(); });
  flagFilter.addEventListener("change", () => { pages.failures = pages.rows = 0; render(); });
  window.addEventListener("hashchange", render);
  render();
})();
"""


def csp(style: str = STYLE, script: str = SCRIPT) -> str:
    """Nothing loads or runs but the two inline blocks and `data:` thumbnails.

    A link to an SVG file is a navigation, which `default-src` does not govern.
    """
    return (
        "default-src 'none'; img-src data:; "
        f"style-src '{_sha256(style)}'; script-src '{_sha256(script)}'; "
        "base-uri 'none'; form-action 'none'"
    )


def _sha256(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")
