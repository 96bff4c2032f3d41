"""Keep only what draws: an allowlist sanitizer for SVGs that come from outside.

A browser that opens an SVG file runs its `<script>` elements and `on*=` handlers, follows its
links and loads whatever its `href`s and `url()`s name. The converter's SVGs are stored and
served, so each one passes through `sanitize_svg` first. It keeps the elements that draw
(shapes, gradients, clips, masks, patterns, markers, text) and the attributes that place and
paint them; everything else goes, and the answer says what went:

- elements not on the list, with their content: `script`, `foreignObject`, `a`, `animate` and
  `set` (which can rewrite an `href`), anything outside the document's SVG namespace (an XHTML
  `<script>` runs too), and `<style>` sheets holding at-rules, escapes or markup;
- processing instructions (`<?xml-stylesheet href=...?>` loads a sheet);
- attributes not on the list: every `on*` handler, those of foreign namespaces;
- an `href`/`xlink:href` that is not a local `#fragment` (an `<image>` may also hold a raster
  `data:` URI); a `<use>` or `<image>` whose link goes is dropped whole;
- in presentation attributes, `style` attributes and `<style>` rules: `url()` other than a local
  `url(#id)`, backslash escapes (`\\75 rl(` is `url(`), quotes outside font names, `expression`,
  `javascript:` and functions that are not colours, lengths or transforms (`image-set("…")`
  loads too); a `style` declaration of another property than a presentation one.

A document with nothing to remove comes back as the very bytes given (XML declaration, DOCTYPE,
comments and formatting included), so a well-behaved converter's SVGs are stored as received.
One with something removed is written anew: UTF-8, an XML declaration, no DOCTYPE, no comments.
The input is parsed by defusedxml (no entity, nothing external is read), so the sanitizer is
safe on its own; the pipeline runs `check_svg` before it all the same.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from typing import NamedTuple

from defusedxml.common import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from img2svg.pipeline.svgcheck import InvalidSvg

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

ELEMENTS = frozenset(
    {
        "svg", "g", "defs", "symbol", "use", "title", "desc", "style",
        "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "image",
        "linearGradient", "radialGradient", "stop", "clipPath", "mask", "pattern", "marker",
        "text", "tspan",
    }
)  # fmt: skip
# Presentation attributes: CSS properties too, so their values are checked as CSS.
PRESENTATION = frozenset(
    {
        "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap",
        "stroke-linejoin", "stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset",
        "stroke-opacity", "opacity", "stop-color", "stop-opacity", "clip-path", "clip-rule",
        "mask", "mask-type", "display", "visibility", "overflow", "color", "transform",
        "transform-origin", "marker-start", "marker-mid", "marker-end", "vector-effect",
        "paint-order", "mix-blend-mode", "isolation", "shape-rendering", "text-rendering",
        "image-rendering", "color-interpolation", "color-rendering", "font-family", "font-size",
        "font-size-adjust", "font-style", "font-weight", "font-variant", "font-stretch",
        "text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift",
        "letter-spacing", "word-spacing", "text-decoration", "writing-mode", "direction",
        "unicode-bidi",
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
CSS_PROPERTIES = PRESENTATION | {"font", "marker"}
_QUOTED = frozenset({"font", "font-family"})  # the only values that may hold quoted strings
_FUNCTIONS = frozenset(
    {
        "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color",
        "calc", "min", "max", "clamp", "matrix", "matrix3d", "translate", "translatex",
        "translatey", "translate3d", "scale", "scalex", "scaley", "rotate", "skew", "skewx",
        "skewy",
    }
)  # fmt: skip
_LOCAL_URL = re.compile(r"""url\(\s*(['"]?)\s*#[^'"()\s]*\s*\1\s*\)""", re.IGNORECASE)
_FUNCTION = re.compile(r"([a-z0-9_-]+)\s*\(", re.IGNORECASE)
_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
_RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
_RASTER = re.compile(
    r"\s*data:image/(?:png|jpeg|jpg|gif|webp);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE
)


class Sanitized(NamedTuple):
    """`data` as it may be written; `changed` when anything was removed, and what (each reason
    once, with a count when it occurred more than once)."""

    data: bytes
    changed: bool
    removed: list[str]


def sanitize_svg(data: bytes) -> Sanitized:
    """Remove from an SVG document whatever does not draw; InvalidSvg if it cannot be parsed
    safely or its root is not an SVG <svg>."""
    root, instructions = _parse(data)
    namespace, name = _split(root.tag)
    if name != "svg" or namespace not in ("", SVG_NS):
        raise InvalidSvg(f"the document's root element is <{root.tag}>, not an SVG <svg>")
    removed: Counter[str] = Counter(f"processing instruction <?{t}?>" for t in instructions)
    _clean_attributes(root, removed)
    stack = [root]
    while stack:
        parent = stack.pop()
        kept: list[ET.Element] = []
        for child in parent:
            reason = _judge(child, namespace, removed)
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
    if not removed:
        return Sanitized(data, False, [])
    notes = [reason if n == 1 else f"{reason} (×{n})" for reason, n in removed.items()]
    return Sanitized(_serialize(root, namespace), True, notes)


class _Builder(ET.TreeBuilder):
    """The usual tree, plus the targets of the processing instructions it leaves out."""

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


def _judge(element: ET.Element, namespace: str, removed: Counter[str]) -> str | None:
    """Why the element goes, or None when it stays (a kept <style> has its rules cleaned)."""
    ns, name = _split(element.tag)
    if ns != namespace:
        return f"<{name}> element of namespace {ns or '(none)'}"
    if name not in ELEMENTS:
        return f"<{name}> element"
    if name in ("use", "image"):
        for key in ("href", f"{{{XLINK_NS}}}href"):
            link = element.get(key)
            if link is not None and not _allowed_link(name, link):
                return f"<{name}> linking {_show(link)}"
    if name == "style":
        cleaned = None if len(element) else _clean_stylesheet(element.text or "")
        if cleaned is None:
            return "<style> element with at-rules, escapes or markup"
        element.text, lost = cleaned
        for prop in lost:
            removed[f"{_show(prop)} declaration in <style>"] += 1
    return None


def _clean_attributes(element: ET.Element, removed: Counter[str]) -> None:
    tag = _split(element.tag)[1]
    for key, value in list(element.attrib.items()):
        reason = _attribute_refusal(tag, key, value)
        if reason is not None:
            removed[reason] += 1
            del element.attrib[key]
    style = element.get("style")
    if style is None:
        return
    clean, lost = _clean_declarations(style)
    for prop in lost:
        removed[f"{_show(prop)} in the style of <{tag}>"] += 1
    if lost and clean:
        element.set("style", clean)
    elif lost:
        del element.attrib["style"]


def _attribute_refusal(tag: str, key: str, value: str) -> str | None:
    ns, name = _split(key)
    if name == "href" and ns in ("", XLINK_NS):
        return None if _allowed_link(tag, value) else f"href {_show(value)} on <{tag}>"
    if ns == XML_NS and name in ("space", "lang"):
        return None
    if ns:
        return f"{name} attribute of namespace {ns} on <{tag}>"
    if name not in ATTRIBUTES:
        return f"{name} attribute on <{tag}>"
    if name in PRESENTATION and not _safe_css_value(name, value):
        return f"{name}={_show(value)} on <{tag}>"
    return None


def _allowed_link(tag: str, link: str) -> bool:
    """A fragment of this document; for an <image>, also a raster image inlined as data."""
    return link.strip().startswith("#") or (tag == "image" and _RASTER.fullmatch(link) is not None)


def _safe_css_value(prop: str, value: str) -> bool:
    if any(c in value for c in "\\<>@{}"):
        return False
    lowered = value.lower()
    if "expression" in lowered or "javascript:" in lowered:
        return False
    rest = _LOCAL_URL.sub("none", lowered)
    if ("'" in rest or '"' in rest) and prop not in _QUOTED:
        return False
    return all(function in _FUNCTIONS for function in _FUNCTION.findall(rest))


def _clean_declarations(text: str) -> tuple[str, list[str]]:
    """(the declarations kept, the properties dropped); `text` as given when none is."""
    kept: list[str] = []
    lost: list[str] = []
    for declaration in _COMMENT.sub(" ", text).split(";"):
        if not declaration.strip():
            continue
        prop, colon, value = declaration.partition(":")
        prop, value = prop.strip().lower(), value.strip()
        if colon and prop in CSS_PROPERTIES and _safe_css_value(prop, value):
            kept.append(f"{prop}:{value}")
        else:
            lost.append(prop or declaration.strip())
    return (text, []) if not lost else (";".join(kept), lost)


def _clean_stylesheet(css: str) -> tuple[str, list[str]] | None:
    """Plain `selector { declarations }` rules, cleaned as `style` attributes; None when the
    sheet holds anything else (at-rules such as @import, escapes, nested blocks, markup)."""
    body = _COMMENT.sub(" ", css)
    if any(c in body for c in "@\\<") or _RULE.sub("", body).strip():
        return None
    rules: list[str] = []
    lost: list[str] = []
    for selector, declarations in _RULE.findall(body):
        clean, dropped = _clean_declarations(declarations)
        lost += dropped
        rules.append(f"{selector.strip()} {{{clean}}}")
    return (css, []) if not lost else ("\n".join(rules), lost)


def _serialize(root: ET.Element, namespace: str) -> bytes:
    """The cleaned tree as UTF-8; every element is in the root's namespace, the default one."""
    declared: list[tuple[str, str]] = [("xmlns", namespace)] if namespace else []
    xlink = f"{{{XLINK_NS}}}href"
    if any(xlink in element.attrib for element in root.iter()):
        declared.append(("xmlns:xlink", XLINK_NS))
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    stack: list[tuple[ET.Element, bool]] = [(root, False)]
    while stack:  # not recursive: a deeply nested document must not exhaust the stack
        element, closing = stack.pop()
        name = _split(element.tag)[1]
        if closing:
            out += [f"</{name}>", _text(element.tail)]
            continue
        attributes = [*(declared if element is root else []), *element.attrib.items()]
        out.append(f"<{name}")
        out += [f' {_attribute_name(key)}="{_attribute(value)}"' for key, value in attributes]
        if len(element) == 0 and not element.text:
            out += ["/>", _text(element.tail)]
            continue
        out += [">", _text(element.text)]
        stack.append((element, True))
        stack.extend((child, False) for child in reversed(element))
    out.append("\n")
    return "".join(out).encode("utf-8")


def _split(name: str) -> tuple[str, str]:
    """'{namespace}local' -> (namespace, local); 'local' -> ('', local)."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def _attribute_name(key: str) -> str:
    namespace, local = _split(key)
    prefix = {XLINK_NS: "xlink:", XML_NS: "xml:"}.get(namespace, "")
    return prefix + local


def _text(text: str | None) -> str:
    if not text:
        return ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("\r", "&#13;")


def _attribute(value: str) -> str:
    escaped = _text(value).replace('"', "&quot;")
    return escaped.replace("\n", "&#10;").replace("\t", "&#9;")


def _show(value: str, limit: int = 60) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")
