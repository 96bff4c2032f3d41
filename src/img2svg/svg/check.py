"""Check that bytes returned as an SVG are a well-formed SVG document, parsed safely.

The converter's API may begin an SVG with the standard header
`<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/.../svg11.dtd">`.
That is harmless, and refusing it would make the pipeline pay for the image again.
The attacks a DOCTYPE can carry are entities (billion laughs, XXE reading local files)
and an external DTD that a parser might fetch. So one pass of expat accepts a DOCTYPE only
when it names `svg`, has no internal subset (`[...]`, where entities are declared) and
either no identifiers or the public id of a W3C SVG DTD; any entity declaration, or a
reference to an entity only a DTD could define, stops the parse. Expat itself fetches
nothing: the external DTD is never read (parameter entity parsing is off) and no
handler loads external entities.
"""

from __future__ import annotations

from xml.parsers import expat

SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"

# The W3C SVG DTDs, by public id; the system id written next to one is never fetched.
_SVG_PUBLIC_IDS = frozenset(
    {
        "-//W3C//DTD SVG 1.0//EN",
        "-//W3C//DTD SVG 1.1//EN",
        "-//W3C//DTD SVG 1.1 Basic//EN",
        "-//W3C//DTD SVG 1.1 Tiny//EN",
        "-//W3C//DTD SVG 1.2 Tiny//EN",
    }
)


class InvalidSvg(ValueError):
    """The bytes are not an SVG document the pipeline keeps; the message says why."""


def _doctype(name: str, system_id: str | None, public_id: str | None, subset: int) -> None:
    if subset:
        raise InvalidSvg("the SVG's DOCTYPE has an internal subset ([...]), where entities hide")
    if name != "svg":
        raise InvalidSvg(f"the SVG's DOCTYPE names <{name}>, not <svg>")
    if public_id is None and system_id is not None:
        raise InvalidSvg(
            f"the SVG's DOCTYPE names an external DTD {system_id!r} without a W3C SVG public id"
        )
    if public_id is not None and public_id not in _SVG_PUBLIC_IDS:
        raise InvalidSvg(f"the SVG's DOCTYPE has an unknown public id {public_id!r}")


def _entity(name: str, *_: object) -> None:
    raise InvalidSvg(f"the SVG declares the entity {name!r}")


def _external_entity(context: str, base: str | None, system_id: str, public_id: str | None) -> int:
    raise InvalidSvg(f"the SVG refers to the external entity {system_id!r}")


def _skipped_entity(name: str, is_parameter_entity: bool) -> None:
    raise InvalidSvg(f"the SVG refers to the entity &{name}; that only a DTD could define")


def check_svg(data: bytes, max_bytes: int = 50 * 1024 * 1024) -> None:
    """Raise InvalidSvg unless `data` is well-formed XML, free of entities and DTD tricks,
    with an <svg> root (in the SVG namespace or none)."""
    if len(data) > max_bytes:
        raise InvalidSvg(f"the SVG is larger than {max_bytes} bytes")
    if not data or data.isspace():
        raise InvalidSvg("the SVG is empty")
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _doctype
    parser.EntityDeclHandler = _entity
    parser.UnparsedEntityDeclHandler = _entity
    parser.ExternalEntityRefHandler = _external_entity
    parser.SkippedEntityHandler = _skipped_entity
    root: list[str] = []

    def first_element(name: str, attributes: dict[str, str]) -> None:
        root.append(name)
        parser.StartElementHandler = None  # as xml.dom.expatbuilder does: the rest costs nothing

    parser.StartElementHandler = first_element
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        raise InvalidSvg(f"the SVG is not well-formed XML: {exc}") from None
    namespace, _, local = root[0].rpartition(" ")  # a well-formed document has a root
    if local != "svg" or namespace not in ("", SVG_NAMESPACE[1:-1]):
        tag = f"{{{namespace}}}{local}" if namespace else local
        raise InvalidSvg(f"the document's root element is <{tag}>, not an SVG <svg>")
