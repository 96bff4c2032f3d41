"""Write an SVG tree so that an XML parser and an HTML parser build the same tree from it.

Our SVGs are opened as files (XML), but also inlined with `innerHTML` and pasted into pages by
servers (the HTML parser, in its "foreign content" rules). The two disagree on much that XML
allows: an HTML parser ends `<!-->` as a comment, ends a DOCTYPE at the first `>` even inside a
quoted system id, turns `<?xml …?>` into a comment, and leaves an SVG `<title>` for HTML
content. So the writer emits only what both read alike:

- elements and attributes, nothing else: no XML declaration (UTF-8 is XML's default), no
  DOCTYPE, no comments, no processing instructions, no CDATA sections;
- every element in the SVG namespace, declared once on the root, unprefixed; attributes
  unprefixed but for `xlink:href`, `xml:space` and `xml:lang`, which both parsers map to the
  same namespaces;
- text and attribute values with `&`, `<`, `>` (and `"` in values) escaped, and the
  characters an XML parser would normalise (CR, and newline or tab in values) as references.

The caller keeps element and attribute names to an allowlist whose mixed-case names are all in
the HTML parser's SVG name tables, and keeps element children out of `<title>`, `<desc>` and
`<style>`, so the result reads the same to both parsers.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_PREFIXES = {XLINK_NS: "xlink:", XML_NS: "xml:"}


def write_svg(root: ET.Element) -> bytes:
    """The tree as UTF-8 bytes; iterative, so a deeply nested document cannot exhaust the
    stack."""
    declared = [("xmlns", SVG_NS)]
    if any(key.startswith(f"{{{XLINK_NS}}}") for element in root.iter() for key in element.attrib):
        declared.append(("xmlns:xlink", XLINK_NS))
    out: list[str] = []
    stack: list[tuple[ET.Element, bool]] = [(root, False)]
    while stack:
        element, closing = stack.pop()
        name = local_name(element.tag)
        if closing:
            out += [f"</{name}>", _text(element.tail) if element is not root else ""]
            continue
        attributes = [*(declared if element is root else []), *element.attrib.items()]
        out.append(f"<{name}")
        out += [f' {_attribute_name(key)}="{_attribute(value)}"' for key, value in attributes]
        if len(element) == 0 and not element.text:
            out += ["/>", _text(element.tail) if element is not root else ""]
            continue
        out += [">", _text(element.text)]
        stack.append((element, True))
        stack.extend((child, False) for child in reversed(element))
    return "".join(out).encode("utf-8")


def split_name(name: str) -> tuple[str, str]:
    """'{namespace}local' -> (namespace, local); 'local' -> ('', local)."""
    if name.startswith("{"):
        namespace, _, local = name[1:].partition("}")
        return namespace, local
    return "", name


def local_name(name: str) -> str:
    return split_name(name)[1]


def _attribute_name(key: str) -> str:
    namespace, local = split_name(key)
    return _PREFIXES.get(namespace, "") + local


def _text(text: str | None) -> str:
    if not text:
        return ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("\r", "&#13;")


def _attribute(value: str) -> str:
    escaped = _text(value).replace('"', "&quot;")
    return escaped.replace("\n", "&#10;").replace("\t", "&#9;")
