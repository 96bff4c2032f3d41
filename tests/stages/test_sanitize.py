"""SVG sanitizer: what runs, loads or links goes; what draws stays and draws the same; the
document is always written anew, so that XML and HTML parsers read the same tree; our own
engine's SVGs are never flagged."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import resvg_py
from PIL import Image

from img2svg.engine.trace import vectorize
from img2svg.finish.results import _csv_cell
from img2svg.svg import sanitize_svg
from img2svg.svg.check import InvalidSvg, check_svg
from tests.svg_trees import same_tree_for_xml_and_html

SAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "images"
NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
RECT = '<rect width="8" height="8" fill="#123456"/>'


def svg(body: str, attributes: str = "") -> bytes:
    return f'<svg {NS} {XLINK} width="8" height="8"{attributes}>{body}</svg>'.encode()


def clean(data: bytes, *, changed: bool = True) -> tuple[str, list[str]]:
    """The sanitized text (which must be a safe SVG, written anew) and the notes; `changed`:
    whether content must have gone."""
    out = sanitize_svg(data)
    assert out.changed is changed and bool(out.removed) is changed
    assert_written_anew(out.data)
    return out.data.decode(), out.removed


def assert_written_anew(out: bytes) -> None:
    """Only elements, attributes and escaped text; a fixpoint; one tree for XML and HTML."""
    check_svg(out)
    assert out.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
    assert not any(marker in out for marker in (b"<!", b"<?", b"]]>"))
    assert sanitize_svg(out) == (out, False, [])  # nothing left to remove or rewrite
    same_tree_for_xml_and_html(out)


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
    assert text.endswith(f"{RECT}</svg>")


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


def test_local_links_and_inlined_rasters_stay_and_draw_the_same() -> None:
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
    text, _ = clean(data, changed=False)
    assert 'style="fill:url(#g);stroke:rgb(1, 2, 3);stroke-width:0.5"' in text
    assert 'clip-path="url(#c)"' in text and 'href="#s"' in text and 'xlink:href="#s"' in text
    assert "<style>.a{fill:#fff;stroke:url(#g)}rect.b{opacity:.5}</style>" in text
    assert f"data:image/png;base64,{pixel}" in text and "DejaVu Sans" in text
    assert np.array_equal(render(text.encode()), render(data))


def test_declaration_doctype_comments_and_cdata_are_formatting_dropped_unflagged() -> None:
    header = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!DOCTYPE svg PUBLIC '
        b'"-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    )
    body = f"\n  <!-- a comment -->{RECT}<text><![CDATA[a < b]]></text>\n"
    text, _ = clean(header + b"<!-- a comment -->\n" + svg(body), changed=False)
    assert text == (
        '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8">'
        f"\n  {RECT}<text>a &lt; b</text>\n</svg>"
    )


@pytest.mark.parametrize(
    "markup",
    [
        "<!--><img src=x onerror=alert(1)>-->",
        "<!---><img src=x onerror=alert(1)>-->",
        "<style><!--</style><img src=x onerror=alert(1)>--></style>",
    ],
)
def test_comments_that_an_html_parser_ends_early_are_gone(markup: str) -> None:
    text, _ = clean(svg(RECT + markup), changed=False)
    assert "img" not in text and "alert" not in text


def test_a_doctype_system_id_holding_markup_is_gone() -> None:
    doctype = b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "x><img src=x onerror=alert(1)>">'
    text, _ = clean(doctype + svg(RECT), changed=False)
    assert "img" not in text and "DOCTYPE" not in text


@pytest.mark.parametrize("element", ["style", "title", "desc", "text"])
def test_text_that_would_close_its_element_early_is_escaped(element: str) -> None:
    payload = f"</{element}><img src=x onerror=alert(1)>"
    data = svg(f"<{element}><![CDATA[{payload}]]></{element}>{RECT}")
    text, _ = clean(data, changed=element == "style")  # in a sheet, not CSS: dropped
    assert "<img" not in text and f"</{element}><img" not in text


def test_elements_inside_title_and_desc_go_their_text_stays() -> None:
    text, removed = clean(svg("<title>a<tspan>b</tspan>c</title><desc><rect/>d</desc>"))
    assert "<title>ac</title><desc>d</desc>" in text
    assert sorted(removed) == ["<rect> element inside <desc>", "<tspan> element inside <title>"]


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
        "rect { fill: red } @media print { rect { fill: url(http://127.0.0.1:9/x) } }",
        "rect { fill: red } @media (min-width: 1px) { @import url(http://127.0.0.1:9/x); }",
        "rect { fill: red } @supports (fill: red) { rect { stroke: red } }",
        "rect { fill: \\75 rl(http://127.0.0.1:9/x) }",
        "</style><script>alert(1)</script>",
    ],
)
def test_at_rules_escapes_and_markup_in_style_sheets_go_plain_rules_stay(sheet: str) -> None:
    text, _ = clean(svg(f"{RECT}<style>{sheet.replace('<', '&lt;')}</style>"))
    assert "127.0.0.1" not in text and "alert" not in text and "\\" not in text
    assert not any(rule in text for rule in ("@import", "@font-face", "@supports"))
    if "rect { fill: red }" in sheet:
        assert "<style>rect{fill:red}</style>" in text


@pytest.mark.parametrize(
    "sheet",
    [
        "svg{font-family:'}'; background-image:url(http://127.0.0.1:9/x); fill:red}",
        'svg{font-family:"/*"; background-image:url(http://127.0.0.1:9/x); x:"*/"; fill:red}',
        "svg{fill:red; x:'\n' ; background-image:url(http://127.0.0.1:9/x)}",
        "svg{fill:red;mask-image:-webkit-image-set('http://127.0.0.1:9/x' 1x)}",
        "svg{fill:red;--x:url(http://127.0.0.1:9/x);stroke:var(--x)}",
    ],
)
def test_strings_comments_and_braces_are_read_as_a_browser_reads_them(sheet: str) -> None:
    text, _ = clean(svg(f"{RECT}<style>{sheet}</style>"))
    assert "127.0.0.1" not in text and "<style>svg{fill:red}</style>" in text


def test_a_style_attribute_hiding_a_url_behind_a_string_comment_loses_it() -> None:
    style = (
        "font-family:&quot;/*&quot;; background-image:url(http://127.0.0.1:9/x); x:&quot;*/&quot;"
    )
    text, removed = clean(svg(f'<rect width="8" height="8" fill="red" style="{style}"/>'))
    assert '<rect width="8" height="8" fill="red"/>' in text and "127.0.0.1" not in text
    assert "'background-image' in the style of <rect>" in removed


def test_media_rules_around_plain_rules_stay() -> None:
    sheet = "rect { fill: red } @media (prefers-color-scheme: dark) { rect { fill: #fff } }"
    text, _ = clean(svg(f"{RECT}<style>{sheet}</style>"), changed=False)
    kept = "rect{fill:red}@media (prefers-color-scheme: dark){rect{fill:#fff}}"
    assert f"<style>{kept}</style>" in text


def test_a_plain_style_sheet_loses_only_its_unsafe_declarations() -> None:
    sheet = ".a { fill: red; background: url(http://127.0.0.1:9/x.png) } rect { stroke: #000 }"
    text, removed = clean(svg(f"{RECT}<style>{sheet}</style>"))
    assert "<style>.a{fill:red}rect{stroke:#000}</style>" in text
    assert removed == ["'background' in <style>"]


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


def test_a_document_without_namespace_is_written_in_the_svg_namespace() -> None:
    text, _ = clean(b'<svg width="1" height="1"><script>x</script><rect width="1"/></svg>')
    assert text == (
        '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"><rect width="1"/></svg>'
    )


def test_namespace_prefix_games_are_read_by_namespace_not_by_prefix() -> None:
    data = (
        b'<s:svg xmlns:s="http://www.w3.org/2000/svg" xmlns:f="http://www.w3.org/1999/xlink"'
        b' xmlns:xlink="http://www.w3.org/1999/xhtml"><s:defs><s:rect id="r" width="1"/>'
        b'</s:defs><s:use f:href="#r"/><s:use f:href="javascript:alert(1)"/>'
        b'<s:image xlink:href="http://127.0.0.1:9/x.png"/></s:svg>'
    )
    text, removed = clean(data)
    assert text == (
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<defs><rect id="r" width="1"/></defs><use xlink:href="#r"/><image/></svg>'
    )
    assert removed[0].startswith("<use> linking 'javascript:")


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
def test_our_engines_svgs_are_never_flagged_and_draw_the_same(name: str, mode: str) -> None:
    data = vectorize((SAMPLES / name).read_bytes(), mode).encode()
    text, _ = clean(data, changed=False)
    assert np.array_equal(render(text.encode()), render(data))


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


def test_transform_functions_keep_their_case_and_draw_the_same() -> None:
    """SVG's transform grammar is case-sensitive (skewX, not skewx): the value is written back
    from its tokens, spelled as given."""
    data = svg(
        '<ellipse cx="4" cy="4" rx="3" ry="1" transform="rotate(-25 4 4) skewX(10) scale(1)"'
        ' style="transform-origin:center"/>'
    )
    text, _ = clean(data, changed=False)
    assert 'transform="rotate(-25 4 4) skewX(10) scale(1)"' in text
    assert np.array_equal(render(text.encode()), render(data))


@pytest.mark.parametrize("space", ["\u00a0", "\u3000", "\u0085", "\u2028"])
def test_a_link_padded_with_unicode_space_is_not_local(space: str) -> None:
    """A URL parser trims ASCII whitespace only: `\u00a0#x` is a relative URL, not a fragment."""
    text, _ = clean(svg(f'{RECT}<image href="{space}#x"/><use href="{space}#x"/>'))
    assert "<image" not in text and "<use" not in text


def test_links_are_written_back_as_checked() -> None:
    pixel = "iVBORw0KGgo="
    data = svg(
        f'<linearGradient id="g" href=" #h "/><image href=" data:image/png;base64,{pixel}"/>'
    )
    text, _ = clean(data, changed=False)
    assert 'href="#h"' in text and f'href="data:image/png;base64,{pixel}"' in text


@pytest.mark.parametrize(
    "body",
    [
        '<rect fill="' + "rgb(" * 400 + '"/>',
        '<rect style="fill:' + "calc(" * 3000 + "1" + ")" * 3000 + '"/>',
        "<style>" + ":not(" * 400 + "a{fill:red}</style>",
        '<style media="' + "(" * 400 + '"/>',
    ],
)
def test_deeply_nested_css_is_dropped_not_a_crash(body: str) -> None:
    try:
        text, _ = clean(svg(RECT + body))
    except InvalidSvg:
        return
    assert "rgb(" not in text and ":not(" not in text and "calc(" not in text


def test_ids_of_any_script_and_digits_and_font_names_of_any_script_stay() -> None:
    data = svg(
        '<linearGradient id="1"/><rect fill="url(#1)" stroke="url(#é)"/>'
        "<text font-family=\"'微软雅黑', sans-serif\" style=\"font-family:'Noto Sans JP'\">a</text>"
    )
    text, _ = clean(data, changed=False)
    assert 'fill="url(#1)"' in text and 'stroke="url(#é)"' in text
    assert "微软雅黑" in text and "Noto Sans JP" in text
