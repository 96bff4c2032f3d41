"""Check that bytes returned as an SVG are a well-formed SVG document, parsed safely."""

from __future__ import annotations

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


class InvalidSvg(ValueError):
    pass


def check_svg(data: bytes, max_bytes: int = 50 * 1024 * 1024) -> None:
    """Raise InvalidSvg unless `data` parses (no entities, no DTD tricks) with an <svg> root."""
    if not data.strip():
        raise InvalidSvg("the SVG is empty")
    if len(data) > max_bytes:
        raise InvalidSvg(f"the SVG is larger than {max_bytes} bytes")
    try:
        root = fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise InvalidSvg(f"the SVG uses forbidden XML constructs ({type(exc).__name__})") from None
    except ParseError as exc:
        raise InvalidSvg(f"the SVG is not well-formed XML: {exc}") from None
    if root.tag not in ("svg", f"{SVG_NAMESPACE}svg"):
        raise InvalidSvg(f"the document's root element is <{root.tag}>, not <svg>")
