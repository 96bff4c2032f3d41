"""SVG sanitizer: what runs, loads or links goes; what draws stays, byte for byte when nothing
had to go; our own engine's SVGs pass through untouched."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import resvg_py
from PIL import Image

from img2svg.engine.trace import vectorize
from img2svg.pipeline.results import _csv_cell
from img2svg.pipeline.svgcheck import InvalidSvg, check_svg
from img2svg.svg import sanitize_svg

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"
NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
RECT = '<rect width="8" height="8" fill="#123456"/>'


def svg(body: str, attributes: str = "") -> bytes:
    return f'<svg {NS} {XLINK} width="8" height="8"{attributes}>{body}</svg>'.encode()


def clean(data: bytes) -> tuple[str, list[str]]:
    """The sanitized text (which must have changed and still be a safe SVG) and the notes."""
    out, changed, removed = sanitize_svg(data)
    assert changed and removed
    check_svg(out)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>') and b"<!DOCTYPE" not in out
    assert sanitize_svg(out) == (out, False, [])  # nothing left to remove
    return out.decode(), removed


def render(data: bytes) -> np.ndarray:
    png = resvg_py.svg_to_bytes(svg_string=data.decode(), dpi=96)
    with Image.open(io.BytesIO(bytes(png))) as image:
        return np.asarray(image.convert("RGBA"))


def test_script_elements_go_whatever_their_namespace() -> None:
    text, removed = clean(
        svg(
            RECT + "<script>alert(1)</script>"
            '<h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(2)</h:script>'
            "<g><script><![CDATA[alert(3)]]></script></g>"
        )
    )
    assert "script" not in text and "alert" not in text
    assert RECT in text and "<g/>" in text
    assert removed[0] == "<script> element (×2)"
    assert "namespace http://www.w3.org/1999/xhtml" in removed[1]


def test_event_handlers_go_and_the_rest_of_the_element_stays() -> None:
    text, removed = clean(
        svg('<rect width="8" height="8" onclick="alert(1)" fill="red"/>', ' onload="x()"')
    )
    assert "onload" not in text and "onclick" not in text
    assert '<rect width="8" height="8" fill="red"/>' in text
    assert removed == ["onload attribute on <svg>", "onclick attribute on <rect>"]


@pytest.mark.parametrize(
    "body",
    [
        '<foreignObject width="8" height="8"><div xmlns="http://www.w3.org/1999/xhtml">'
        '<img src="x" onerror="alert(1)"/></div></foreignObject>',
        '<animate attributeName="href" to="javascript:alert(1)"/>',
        '<set attributeName="onmouseover" to="alert(1)"/>',
        '<a href="javascript:alert(1)"><rect width="1" height="1"/></a>',
        '<iframe xmlns="http://www.w3.org/1999/xhtml" src="http://127.0.0.1:9/"/>',
    ],
)
def test_elements_that_do_not_draw_go_with_their_content(body: str) -> None:
    text, _ = clean(svg(RECT + body))
    assert text.endswith(f"{RECT}</svg>\n")


@pytest.mark.parametrize(
    "link",
    [
        "http://127.0.0.1:9/x.svg#a",
        "javascript:alert(1)",
        " JavaScript:alert(1)",
        "data:image/svg+xml;base64,PHN2Zy8+",
        "other.svg#a",
    ],
)
@pytest.mark.parametrize("attribute", ["href", "xlink:href"])
def test_a_link_out_of_the_document_goes(attribute: str, link: str) -> None:
    text, removed = clean(
        svg(
            f'{RECT}<use {attribute}="{link}"/><image {attribute}="{link}" width="8"/>'
            f'<linearGradient id="g" {attribute}="{link}"/>'
        )
    )
    assert "use" not in text and "image" not in text and "href" not in text
    assert '<linearGradient id="g"/>' in text
    assert removed[0].startswith("<use> linking") and removed[1].startswith("<image> linking")


def test_local_links_and_inlined_rasters_stay_and_the_bytes_are_untouched() -> None:
    pixel = (
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5E"
        "rkJggg=="
    )
    data = svg(
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/></linearGradient>'
        '<clipPath id="c"><rect width="4" height="4"/></clipPath>'
        '<mask id="m"><rect width="8" height="8" fill="white"/></mask>'
        '<symbol id="s"><circle r="2"/></symbol></defs>'
        '<use href="#s"/><use xlink:href="#s" x="2"/>'
        '<rect width="8" height="8" fill="url(#g)" clip-path="url( \'#c\' )" mask="url(#m)"'
        ' style="fill: url(&quot;#g&quot;); stroke:rgb(1, 2, 3);stroke-width:0.5"/>'
        f'<image width="1" height="1" href="data:image/png;base64,{pixel}"/>'
        '<text x="1" y="7" font-family="\'DejaVu Sans\', sans-serif">A <tspan>b</tspan></text>'
        "<style>.a { fill: #fff; stroke: url(#g) } rect.b{opacity:.5}</style>"
    )
    assert sanitize_svg(data) == (data, False, [])


def test_the_bytes_are_kept_as_received_doctype_and_all() -> None:
    header = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC '
        b'"-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    )
    data = header + b"<!-- a comment -->\n" + svg(f"\n  {RECT}\n")
    assert sanitize_svg(data) == (data, False, [])


@pytest.mark.parametrize(
    ("attributes", "gone"),
    [
        ('fill="url(http://127.0.0.1:9/p.svg#g)"', "fill"),
        ("fill=\"url('https://127.0.0.1:9/p.svg#g')\"", "fill"),
        ('mask="URL(//127.0.0.1:9/m.svg#m)"', "mask"),
        ('filter="url(#f)"', "filter"),  # not on the list: filters are not kept
        ('fill="\\75 rl(http://127.0.0.1:9/p.svg#g)"', "fill"),  # a CSS escape for url(
        ('cursor="url(http://127.0.0.1:9/c.cur), auto"', "cursor"),
    ],
)
def test_external_urls_in_attributes_go(attributes: str, gone: str) -> None:
    text, removed = clean(svg(f'<rect width="8" height="8" {attributes} stroke="#000"/>'))
    assert '<rect width="8" height="8" stroke="#000"/>' in text
    assert removed[0].startswith(f"{gone}")


@pytest.mark.parametrize(
    "declaration",
    [
        "fill:url(http://127.0.0.1:9/p.svg#g)",
        "background-image:url(http://127.0.0.1:9/x.png)",
        "mask:image-set('http://127.0.0.1:9/x.png' 1x)",
        "width:expression(alert(1))",
        "fill:u\\72l(http://127.0.0.1:9/x)",
        "behavior:url(x.htc)",
        "-moz-binding:url(http://127.0.0.1:9/x.xml#x)",
    ],
)
def test_unsafe_style_declarations_go_and_safe_ones_stay(declaration: str) -> None:
    data = svg(f'<rect width="8" height="8" style="stroke:#000; {declaration} ;opacity:0.5"/>')
    text, removed = clean(data)
    assert 'style="stroke:#000;opacity:0.5"' in text and "127.0.0.1" not in text
    assert len(removed) == 1 and "in the style of <rect>" in removed[0]


@pytest.mark.parametrize(
    "sheet",
    [
        '@import url("http://127.0.0.1:9/x.css"); rect { fill: red }',
        "@font-face { src: url(http://127.0.0.1:9/f.woff) }",
        "rect { fill: red } @media print { rect { fill: blue } }",
        "rect { fill: \\75 rl(http://127.0.0.1:9/x) }",
        "</style><script>alert(1)</script>",
    ],
)
def test_style_sheets_beyond_plain_rules_go_whole(sheet: str) -> None:
    text, removed = clean(svg(f"{RECT}<style>{sheet.replace('<', '&lt;')}</style>"))
    assert "<style" not in text and "127.0.0.1" not in text and "alert" not in text
    assert removed == ["<style> element with at-rules, escapes or markup"]


def test_a_plain_style_sheet_loses_only_its_unsafe_declarations() -> None:
    sheet = ".a { fill: red; background: url(http://127.0.0.1:9/x.png) } rect { stroke: #000 }"
    text, removed = clean(svg(f"{RECT}<style>{sheet}</style>"))
    assert "<style>.a {fill:red}\nrect { stroke: #000 }</style>" in text
    assert removed == ["'background' declaration in <style>"]


def test_processing_instructions_go() -> None:
    data = b'<?xml version="1.0"?>\n<?xml-stylesheet href="http://127.0.0.1:9/x.css"?>\n' + svg(
        "<?php echo 1; ?>" + RECT
    )
    text, removed = clean(data)
    assert "<?xml-stylesheet" not in text and "php" not in text and RECT in text
    assert removed == [
        "processing instruction <?xml-stylesheet?>",
        "processing instruction <?php?>",
    ]


def test_text_and_its_tails_survive_a_removal() -> None:
    text, _ = clean(svg('<text x="0" y="8">a &amp; <script>x</script>b<tspan>c</tspan>d</text>'))
    root = ET.fromstring(text)
    assert "".join(root.itertext()) == "a & bcd"


def test_a_deeply_nested_document_is_cleaned_without_recursion() -> None:
    depth = 5000
    data = svg("<g>" * depth + "<script>alert(1)</script>" + RECT + "</g>" * depth)
    text, removed = clean(data)
    assert removed == ["<script> element"] and RECT in text and text.count("<g>") == depth


def test_a_document_without_namespace_keeps_none() -> None:
    text, _ = clean(b'<svg width="1" height="1"><script>x</script><rect width="1"/></svg>')
    assert text.endswith('<svg width="1" height="1"><rect width="1"/></svg>\n')


@pytest.mark.parametrize(
    "data",
    [
        b'<!DOCTYPE svg [<!ENTITY a "b">]><svg xmlns="http://www.w3.org/2000/svg">&a;</svg>',
        b'<html xmlns="http://www.w3.org/1999/xhtml"/>',
        b"<svg><rect></svg>",
    ],
)
def test_what_cannot_be_parsed_safely_is_refused(data: bytes) -> None:
    with pytest.raises(InvalidSvg):
        sanitize_svg(data)


@pytest.mark.parametrize(
    ("name", "mode"),
    [
        ("logo.png", "fast"),
        ("logo.png", "slow"),
        ("icon_alpha.png", "slow"),
        ("chelsea.jpg", "fast"),
    ],
)
def test_our_engines_svgs_pass_through_untouched(name: str, mode: str) -> None:
    data = vectorize((SAMPLES / name).read_bytes(), mode).encode()
    assert sanitize_svg(data) == (data, False, [])


def translucent_photo() -> bytes:
    """A photo fading out left to right: vtracer's path, with the alpha mask."""
    photo = Image.open(SAMPLES / "chelsea.jpg").convert("RGBA").resize((160, 120))
    ramp = np.tile(np.linspace(0, 255, 160).astype(np.uint8), (120, 1))
    photo.putalpha(Image.fromarray(ramp, "L"))
    buffer = io.BytesIO()
    photo.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("source", "mark"),
    [
        (translucent_photo, b"<mask"),  # a photo: traced, alpha as a mask
        (lambda: (SAMPLES / "icon_alpha.png").read_bytes(), b'transform="scale('),  # flat art
    ],
    ids=["photo-with-mask", "flat-art"],
)
def test_a_sanitized_engine_svg_draws_exactly_as_before(source, mark: bytes) -> None:
    """Unsafe additions to a real engine SVG go, and resvg draws the result pixel for pixel
    like the engine's own SVG."""
    original = vectorize(source(), "fast").encode()
    assert mark in original
    tampered = (
        original.replace(b"<svg ", b'<svg onload="alert(1)" ', 1)
        .replace(b"<path ", b'<path onmouseover="alert(2)" ')
        .replace(b"</svg>", b'<script>alert(3)</script><image href="http://127.0.0.1:9/x.png" '
                 b'width="9" height="9"/></svg>')
    )  # fmt: skip
    text, removed = clean(tampered)
    assert "alert" not in text and "127.0.0.1" not in text
    assert removed[0] == "onload attribute on <svg>"
    assert np.array_equal(render(text.encode()), render(original))


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ('=HYPERLINK("http://127.0.0.1:9/")', '\'=HYPERLINK("http://127.0.0.1:9/")'),
        ("+1", "'+1"),
        ("-1", "'-1"),  # a text, not a number
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (-3, -3),
        (-0.5, -0.5),
        (None, ""),
        (True, True),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_escaped(value: object, cell: object) -> None:
    assert _csv_cell(value) == cell
