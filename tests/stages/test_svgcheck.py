"""SVG check: the standard SVG header passes; entities, external DTDs and non-SVG bytes do not."""

from __future__ import annotations

import socket

import pytest

from img2svg.svg import check as svgcheck
from img2svg.svg.check import InvalidSvg, check_svg

BODY = b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><path d="M0 0h1v1z"/></svg>'
XML_DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
SVG11 = b'"-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"'
HIDREAM_HEADER = XML_DECL + b"<!DOCTYPE svg PUBLIC " + SVG11 + b">\n"
LAUGHS = b"".join(
    b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i else b"lol") for i in range(10)
)


def public(public_id: bytes, system_id: bytes) -> bytes:
    return b'<!DOCTYPE svg PUBLIC "%s" "%s">\n' % (public_id, system_id) + BODY


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(BODY, id="plain"),
        pytest.param(b"<svg/>", id="no-namespace"),
        pytest.param(b'<s:svg xmlns:s="http://www.w3.org/2000/svg"/>', id="prefixed-root"),
        pytest.param(HIDREAM_HEADER + BODY, id="hidream-header"),
        pytest.param(XML_DECL + BODY, id="xml-declaration"),
        pytest.param(b"\xef\xbb\xbf" + BODY, id="utf8-bom"),
        pytest.param(b"\xef\xbb\xbf" + HIDREAM_HEADER + BODY, id="utf8-bom-hidream-header"),
        pytest.param(b"<!DOCTYPE svg>" + BODY, id="bare-doctype"),
        pytest.param(
            public(
                b"-//W3C//DTD SVG 1.0//EN",
                b"http://www.w3.org/TR/2001/REC-SVG-20010904/DTD/svg10.dtd",
            ),
            id="svg-1.0",
        ),
        pytest.param(
            public(
                b"-//W3C//DTD SVG 1.1 Basic//EN",
                b"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-basic.dtd",
            ),
            id="svg-1.1-basic",
        ),
        pytest.param(
            public(
                b"-//W3C//DTD SVG 1.1 Tiny//EN",
                b"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11-tiny.dtd",
            ),
            id="svg-1.1-tiny",
        ),
        pytest.param(
            public(
                b"-//W3C//DTD SVG 1.2 Tiny//EN", b"http://www.w3.org/Graphics/SVG/1.2/DTD/svg12.dtd"
            ),
            id="svg-tiny-1.2",
        ),
        pytest.param(public(b"-//W3C//DTD SVG 1.1//EN", b"svg11.dtd"), id="relative-system-id"),
        pytest.param(
            public(b"-//W3C//DTD SVG 1.1//EN", b"http://127.0.0.1:9/svg11.dtd"),
            id="any-system-id-not-fetched",
        ),
        pytest.param(
            XML_DECL
            + b'<!-- made by HiDream -->\n<?xml-stylesheet href="s.css" type="text/css"?>\n'
            + b"<!DOCTYPE svg PUBLIC "
            + SVG11
            + b">\n<!-- after the DOCTYPE -->\n"
            + BODY
            + b"\n<!-- trailing -->\n",
            id="comments-and-pis",
        ),
        pytest.param(b"<svg><text>a &amp; b &#169; &#x263A;</text></svg>", id="predefined-refs"),
    ],
)
def test_accepted(data: bytes) -> None:
    check_svg(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", "empty", id="302-redirect-body"),
        pytest.param(b" \r\n\t", "empty", id="whitespace"),
        pytest.param(b"<svg><path></svg>", "not well-formed", id="mismatched-tag"),
        pytest.param(BODY[:40], "not well-formed", id="truncated"),
        pytest.param(b'{"code": 500, "message": "error"}', "not well-formed", id="json-error"),
        pytest.param(b"<svg>&nbsp;</svg>", "not well-formed", id="undefined-entity"),
        pytest.param(b" " + XML_DECL + BODY, "not well-formed", id="space-before-declaration"),
        pytest.param(BODY + b"<svg/>", "not well-formed", id="two-roots"),
        pytest.param(
            b"<html><head><title>502 Bad Gateway</title></head><body><center>"
            b"<h1>502 Bad Gateway</h1></center><hr/><center>nginx</center></body></html>",
            "root element is <html>, not an SVG <svg>",
            id="html-error-page",
        ),
        pytest.param(
            b"<!DOCTYPE html><html><body><h1>Error 403</h1></body></html>",
            "DOCTYPE names <html>",
            id="html5-error-page",
        ),
        pytest.param(b"<html/>", "root element is <html>", id="root-html"),
        pytest.param(
            b'<html xmlns="http://www.w3.org/2000/svg"/>',
            r"<\{http://www.w3.org/2000/svg\}html>, not an SVG <svg>",
            id="root-html-in-svg-namespace",
        ),
        pytest.param(
            b'<svg xmlns="http://example.com/ns"/>',
            r"<\{http://example.com/ns\}svg>, not an SVG <svg>",
            id="svg-in-other-namespace",
        ),
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE lolz [' + LAUGHS + b"]><svg>&lol9;</svg>",
            "internal subset",
            id="billion-laughs",
        ),
        pytest.param(
            b'<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg>&xxe;</svg>',
            "internal subset",
            id="xxe",
        ),
        pytest.param(
            b'<!DOCTYPE svg [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><svg/>',
            "internal subset",
            id="parameter-entity",
        ),
        pytest.param(
            b"<!DOCTYPE svg [<!ENTITY % p \"<!ENTITY a 'b'>\"> %p;]><svg>&a;</svg>",
            "internal subset",
            id="internal-parameter-entity",
        ),
        pytest.param(b"<!DOCTYPE svg []>" + BODY, "internal subset", id="empty-internal-subset"),
        pytest.param(
            b"<!DOCTYPE svg PUBLIC " + SVG11 + b' [<!ENTITY a "b">]><svg>&a;</svg>',
            "internal subset",
            id="w3c-public-id-with-internal-subset",
        ),
        pytest.param(
            b'<!DOCTYPE svg SYSTEM "http://127.0.0.1:9/evil.dtd">' + BODY,
            "external DTD 'http://127.0.0.1:9/evil.dtd' without a W3C SVG public id",
            id="system-dtd",
        ),
        pytest.param(
            b'<!DOCTYPE svg SYSTEM "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">' + BODY,
            "external DTD",
            id="system-dtd-w3c-url-without-public-id",
        ),
        pytest.param(
            public(b"-//EVIL//DTD SVG 1.1//EN", b"http://127.0.0.1:9/evil.dtd"),
            "unknown public id",
            id="unknown-public-id",
        ),
        pytest.param(
            public(
                b"-//W3C//DTD XHTML 1.0 Strict//EN",
                b"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd",
            ),
            "unknown public id",
            id="xhtml-public-id",
        ),
        pytest.param(
            b"<!DOCTYPE html PUBLIC " + SVG11 + b">" + BODY,
            "DOCTYPE names <html>, not <svg>",
            id="doctype-name-not-svg",
        ),
        pytest.param(b"<!DOCTYPE SVG>" + BODY, "DOCTYPE names <SVG>", id="doctype-name-case"),
        pytest.param(
            HIDREAM_HEADER + b"<svg>&xxe;</svg>", "entity &xxe;", id="entity-only-a-dtd-defines"
        ),
    ],
)
def test_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidSvg, match=reason):
        check_svg(data)


def test_size_limit() -> None:
    check_svg(BODY, max_bytes=len(BODY))
    with pytest.raises(InvalidSvg, match=f"larger than {len(BODY) - 1} bytes"):
        check_svg(BODY, max_bytes=len(BODY) - 1)


@pytest.mark.parametrize(
    ("data", "entity"),
    [
        (b"<!DOCTYPE svg [" + LAUGHS + b"]><svg>&lol9;</svg>", "lol0"),
        (b'<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><svg>&xxe;</svg>', "xxe"),
        (b'<!DOCTYPE svg [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><svg/>', "p"),
        (b'<!DOCTYPE svg [<!ENTITY i SYSTEM "x.png" NDATA png>]><svg/>', "i"),
    ],
    ids=["billion-laughs", "xxe", "parameter-entity", "unparsed-entity"],
)
def test_entity_declarations_are_refused_even_past_the_doctype_check(
    data: bytes, entity: str, monkeypatch
) -> None:
    """Second line of defence: were an internal subset let through, its first entity stops it."""
    monkeypatch.setattr(svgcheck, "_doctype", lambda *args: None)
    with pytest.raises(InvalidSvg, match=f"declares the entity '{entity}'"):
        check_svg(data)


@pytest.mark.parametrize(
    ("template", "accepted"),
    [
        (b'<!DOCTYPE svg SYSTEM "{url}">' + BODY, False),
        (b'<!DOCTYPE svg PUBLIC "-//EVIL//DTD SVG//EN" "{url}">' + BODY, False),
        (b'<!DOCTYPE svg [<!ENTITY xxe SYSTEM "{url}">]><svg>&xxe;</svg>', False),
        (b'<!DOCTYPE svg [<!ENTITY % p SYSTEM "{url}"> %p;]><svg/>', False),
        (b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "{url}">' + BODY, True),
    ],
    ids=["system-dtd", "unknown-public-id", "xxe", "parameter-entity", "w3c-public-id"],
)
def test_nothing_is_fetched(template: bytes, accepted: bool, monkeypatch) -> None:
    """A DTD or entity URL pointing at a live listener: no connection is ever attempted."""

    def no_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("the SVG check opened a connection")

    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        url = b"http://127.0.0.1:%d/evil.dtd" % listener.getsockname()[1]
        monkeypatch.setattr(socket.socket, "connect", no_connect)
        monkeypatch.setattr(socket, "create_connection", no_connect)
        data = template.replace(b"{url}", url)
        if accepted:
            check_svg(data)
        else:
            with pytest.raises(InvalidSvg):
                check_svg(data)
        with pytest.raises(TimeoutError):
            listener.accept()
