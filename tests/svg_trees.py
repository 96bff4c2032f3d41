"""One tree for XML and HTML: what a stored SVG must be, however a browser or server reads it.

An XML parser (opening the file) and the HTML parser (`innerHTML`, or a server pasting the SVG
into a page) must build the same elements, attributes and text from the bytes; where they
differ, markup hides from one of them (a comment that HTML ends at `<!-->`, a DOCTYPE that it
ends at the first `>`). html5lib implements the HTML parsing algorithm of the standard.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import html5lib

XMLNS = "http://www.w3.org/2000/xmlns/"


def same_tree_for_xml_and_html(data: bytes) -> None:
    """Assert that `data` parses to the same tree as XML and as HTML in a page's body."""
    xml_root = ET.fromstring(data)
    fragment = html5lib.parseFragment(data.decode("utf-8"), container="body")
    assert not (fragment.text or "").strip(), f"HTML saw text before the SVG: {fragment.text!r}"
    html_children = list(fragment)
    assert len(html_children) == 1, f"HTML saw {len(html_children)} top elements"
    assert _shape(html_children[0]) == _shape(xml_root)


def _shape(root: ET.Element) -> list[tuple[str, dict[str, str], str, str]]:
    """Every element in document order: tag, attributes (namespace declarations aside), text
    and tail (the root's tail aside: it belongs to the page)."""
    out = []
    for element in root.iter():
        attributes = {
            key: value
            for key, value in element.attrib.items()
            if not key.startswith(f"{{{XMLNS}}}") and key != "xmlns"
        }
        tail = "" if element is root else (element.tail or "")
        out.append((str(element.tag), attributes, element.text or "", tail))
    return out
