"""Keep only what draws: an allowlist sanitizer for SVGs that come from outside.

A browser that opens an SVG runs its `<script>` elements and `on*=` handlers, follows its
links and loads whatever its `href`s and `url()`s name; inlined into a page, the same bytes
are read again by the HTML parser, which disagrees with XML on comments, DOCTYPEs, CDATA and
more. The converter's SVGs are stored and served, so each one passes through `sanitize_svg`:

- elements not on the list go with their content: `script`, `foreignObject`, `a`, `animate`
  and `set` (which can rewrite an `href`), `filter`/`feImage`, anything outside the
  document's SVG namespace (an XHTML `<script>` runs too); element children of `<title>` and
  `<desc>` (HTML reads those as HTML) and `<style>` sheets holding markup;
- attributes not on the list: every `on*` handler, those of foreign namespaces;
- an `href`/`xlink:href` that is not a local `#fragment` (an `<image>` may also hold a raster
  `data:` URI); a `<use>` or `<image>` whose link goes is dropped whole;
- CSS (`style` attributes, presentation attributes, `<style>` sheets) is read by a real
  tokenizer and written back from the tokens kept (`img2svg.svg.css`);
- processing instructions (`<?xml-stylesheet href=…?>` loads a sheet).

The document is always written anew (`img2svg.svg.serialize`): no XML declaration, DOCTYPE,
comments or CDATA, escaped so that XML and HTML parsers build the same tree. Keeping a
converter's bytes would keep whatever in them an HTML parser reads differently. `changed` and
`removed` speak only of content that went (elements, attributes, declarations, instructions),
never of formatting, so a well-behaved converter's SVGs are not flagged. The input is parsed
by defusedxml (no entity, nothing external is read), so the sanitizer is safe on its own; the
pipeline runs `check_svg` before it all the same.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import NamedTuple

from defusedxml.common import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from img2svg.svg.check import InvalidSvg
from img2svg.svg.css import (
    LOCAL_ID,
    PRESENTATION,
    clean_declarations,
    clean_media,
    clean_sheet,
    clean_value,
)
from img2svg.svg.serialize import SVG_NS, XLINK_NS, XML_NS, local_name, split_name, write_svg

ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "symbol", "use", "title", "desc", "style",
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "image",
        "linearGradient", "radialGradient", "stop", "clipPath", "mask", "pattern", "marker",
        "text", "tspan",
    }
)  # fmt: skip
ATTRIBUTES = PRESENTATION | frozenset(
    {
        "id", "class", "style", "lang", "type", "media", "version", "baseProfile",
        "viewBox", "preserveAspectRatio", "d", "points", "pathLength",
        "x", "y", "width", "height", "rx", "ry", "cx", "cy", "r", "fx", "fy", "fr",
        "x1", "y1", "x2", "y2", "dx", "dy", "rotate", "textLength", "lengthAdjust",
        "offset", "gradientUnits", "gradientTransform", "spreadMethod", "patternUnits",
        "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits",
        "maskContentUnits", "markerUnits", "markerWidth", "markerHeight", "refX", "refY",
        "orient",
    }
)  # fmt: skip
_LINKING = frozenset({"use", "image", "linearGradient", "radialGradient", "pattern"})
_TEXT_ONLY = frozenset({"title", "desc"})  # HTML integration points: children would be HTML
_RASTER = re.compile(r"data:image/(?:png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=]*", re.IGNORECASE)
_URL_SPACE = " \t\n\r\f"  # what a URL parser trims; never Unicode spaces, which it keeps


class Sanitized(NamedTuple):
    """`data` as it may be written; `changed` when content was removed, and what (each reason
    once, with a count when it occurred more than once)."""

    data: bytes
    changed: bool
    removed: list[str]


def sanitize_svg(data: bytes) -> Sanitized:
    """Remove from an SVG document whatever does not draw and write it anew; InvalidSvg if it
    cannot be parsed safely or its root is not an SVG <svg>."""
    try:
        return _sanitize(data)
    except RecursionError:  # nesting no parser bound caught: refused, never a crash
        raise InvalidSvg("the SVG nests too deeply to be checked") from None


def _sanitize(data: bytes) -> Sanitized:
    root, instructions = _parse(data)
    namespace, name = split_name(root.tag)
    if name != "svg" or namespace not in ("", SVG_NS):
        raise InvalidSvg(f"the document's root element is <{root.tag}>, not an SVG <svg>")
    removed: Counter[str] = Counter(f"processing instruction <?{t}?>" for t in instructions)
    _clean_attributes(root, removed)
    stack = [root]
    while stack:  # not recursive: a deeply nested document must not exhaust the stack
        parent = stack.pop()
        kept: list[ET.Element] = []
        for child in parent:
            reason = _judge(child, local_name(parent.tag), namespace, removed)
            if reason is None:
                _clean_attributes(child, removed)
                kept.append(child)
                stack.append(child)
                continue
            removed[reason] += 1
            if child.tail:  # text after the element belongs to its parent
                if kept:
                    kept[-1].tail = (kept[-1].tail or "") + child.tail
                else:
                    parent.text = (parent.text or "") + child.tail
        if len(kept) != len(parent):
            parent[:] = kept
    notes = [reason if n == 1 else f"{reason} (×{n})" for reason, n in removed.items()]
    return Sanitized(write_svg(root), bool(removed), notes)


class _Builder(ET.TreeBuilder):
    """The usual tree (comments left out), plus the targets of the processing instructions."""

    def __init__(self) -> None:
        super().__init__()
        self.instructions: list[str] = []

    def pi(self, target: str, text: str | None = None) -> None:  # type: ignore[override]
        self.instructions.append(target)


def _parse(data: bytes) -> tuple[ET.Element, list[str]]:
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=False)  # entities, external: refused
    try:
        parser.feed(data)
        root = parser.close()
    except (ET.ParseError, DefusedXmlException) as exc:
        raise InvalidSvg(f"the SVG cannot be parsed safely: {exc}") from exc
    return root, builder.instructions


def _judge(element: ET.Element, parent: str, namespace: str, removed: Counter[str]) -> str | None:
    """Why the element goes, or None when it stays (a kept <style> has its sheet cleaned)."""
    ns, name = split_name(element.tag)
    if ns != namespace:
        return f"<{name}> element of namespace {ns or '(none)'}"
    if name not in ELEMENTS:
        return f"<{name}> element"
    if parent in _TEXT_ONLY:
        return f"<{name}> element inside <{parent}>"
    if name in ("use", "image"):
        for key in ("href", f"{{{XLINK_NS}}}href"):
            link = element.get(key)
            if link is not None and _allowed_link(name, link) is None:
                return f"<{name}> linking {_show(link)}"
    if name == "style":
        if len(element):
            return "<style> element holding markup"
        element.text, lost = clean_sheet(element.text or "")
        for what in lost:
            removed[f"{_show(what)} in <style>"] += 1
    return None


def _clean_attributes(element: ET.Element, removed: Counter[str]) -> None:
    """Drop what is refused; write the CSS of what is kept anew from its tokens."""
    tag = local_name(element.tag)
    for key, value in list(element.attrib.items()):
        ns, name = split_name(key)
        kept, reason = _attribute(tag, ns, name, value)
        if reason is not None:
            removed[reason] += 1
        if kept is None:
            del element.attrib[key]
        else:
            element.set(key, kept)
    style = element.get("style")
    if style is None:
        return
    clean, lost = clean_declarations(style)
    for prop in lost:
        removed[f"{_show(prop)} in the style of <{tag}>"] += 1
    if clean:
        element.set("style", clean)
    else:
        del element.attrib["style"]


def _attribute(tag: str, ns: str, name: str, value: str) -> tuple[str | None, str | None]:
    """(the value to keep or None, why content went or None)."""
    if name == "href" and ns in ("", XLINK_NS):
        link = _allowed_link(tag, value) if tag in _LINKING else None
        if link is not None:
            return link, None
        return None, f"href {_show(value)} on <{tag}>"
    if ns == XML_NS and name in ("space", "lang"):
        return value, None
    if ns:
        return None, f"{name} attribute of namespace {ns} on <{tag}>"
    if name not in ATTRIBUTES:
        return None, f"{name} attribute on <{tag}>"
    if name == "style":
        return value, None  # declaration by declaration, by the caller
    if name in PRESENTATION or name == "media":
        clean = clean_media(value) if name == "media" else clean_value(name, value)
        if clean is None:
            return None, f"{name}={_show(value)} on <{tag}>"
        return clean, None
    return value, None


def _allowed_link(tag: str, link: str) -> str | None:
    """The link as it may be written, when it is a fragment of this document or, for an
    <image>, a raster image inlined as data; None otherwise."""
    local = LOCAL_ID.fullmatch(link)
    if local is not None:
        return f"#{local[1]}"
    data = "".join(link.strip(_URL_SPACE).split())  # base64 may be wrapped over lines
    if tag == "image" and _RASTER.fullmatch(data) and data.isascii():
        return data
    return None


def _show(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
