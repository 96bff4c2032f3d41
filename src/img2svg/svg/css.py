"""CSS in an SVG, read by a real tokenizer and written back from the tokens that were kept.

A browser reads `style` attributes, presentation attributes and `<style>` sheets with the CSS
Syntax Level 3 tokenizer, so this module reads them with one too (tinycss2): a `"/*"` is a
string, not a comment; a `}` inside quotes closes nothing; `\\75 rl(` is `url(`. Checking a
regex view of the text instead lets a `url()` hide in what the check takes for a comment or a
selector.

What is kept is an allowlist, token by token:

- declarations of presentation properties only (`fill`, `stroke`, `font-family`, …);
- values made of keywords, numbers, lengths, percentages, angles, `#rgb` colours, the colour,
  math, transform and basic-shape functions, and a local `url(#id)`;
- quoted strings only in font names: any script, but no quote, backslash, markup, brace,
  parenthesis or control character;
- rules whose selectors are names, classes, ids, attributes, combinators and plain
  pseudo-classes; `@media` around such rules.

Everything else goes: other properties, other functions (`image-set`, `var`, `attr`, `src`,
`expression`), `url()` to anything but `#id` in any spelling, every other at-rule (`@import`,
`@font-face`, …), custom properties, and any declaration or rule whose source holds a
backslash: an escape has no business in what a vectorizer writes. Nesting deeper than 16
functions or blocks is refused too (no drawing needs it, and checking it must not recurse
without bound). The text written back is
made from the kept tokens, never copied from the input, and holds no `<`, `&` or backslash, so
no HTML or XML parser can read it as markup.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import tinycss2
from tinycss2 import ast

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
"""Properties that are also SVG presentation attributes: what a drawing may set."""

PROPERTIES = PRESENTATION | {"font", "marker"}
"""What a `style` attribute or a `<style>` rule may declare: the presentation properties and
their shorthands."""

_FONT_PROPERTIES = frozenset({"font", "font-family"})  # the only values with quoted strings
_FUNCTIONS = frozenset(
    {
        "rgb", "rgba", "hsl", "hsla", "hwb", "lab", "lch", "oklab", "oklch", "color",
        "color-mix", "light-dark", "calc", "min", "max", "clamp", "matrix", "matrix3d",
        "translate", "translatex", "translatey", "translate3d", "scale", "scalex", "scaley",
        "scale3d", "rotate", "skew", "skewx", "skewy", "circle", "ellipse", "inset", "polygon",
    }
)  # fmt: skip
_UNITS = frozenset(
    {
        "px", "em", "ex", "rem", "ch", "pt", "pc", "cm", "mm", "in", "q", "vw", "vh", "vmin",
        "vmax", "vi", "vb", "dvh", "dvw", "svh", "svw", "lvh", "lvw", "lh", "rlh", "cqw",
        "cqh", "cqi", "cqb", "cqmin", "cqmax", "deg", "rad", "grad", "turn", "s", "ms",
    }
)  # fmt: skip
_VALUE_LITERALS = frozenset({",", "/", "+", "-", "*"})
_SELECTOR_LITERALS = frozenset({".", ",", ">", "+", "~", "*", ":"})
_ATTRIBUTE_LITERALS = frozenset({"=", "~=", "|=", "^=", "$=", "*="})
_SELECTOR_FUNCTIONS = frozenset(
    {"not", "is", "where", "nth-child", "nth-last-child", "nth-of-type", "nth-last-of-type"}
)
_IDENT = re.compile(r"-?[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\-\u0080-\U0010ffff]*")
_COLOUR = re.compile(r"[0-9A-Fa-f]{3,8}")
# Quoted strings (font names): any script, but no quote, backslash, markup or control
# character, and nothing a careless reader of the written sheet could take for syntax.
_FONT_NAME = re.compile(r"[^\x00-\x1f\x7f'\"\\<>&{}();*/]*")
# A fragment of this document: CSS and URL parsers trim ASCII whitespace only.
LOCAL_ID = re.compile(r"[ \t\n\r\f]*#([^\x00-\x20\x7f'\"()\\<>&]+)[ \t\n\r\f]*")
_MAX_DEPTH = 16  # nested functions or blocks: deeper is no drawing's, and recursion is bounded
_NEWLINES = re.compile(r"\r\n|[\r\f]")


@functools.lru_cache(maxsize=4096)  # a drawing repeats its colours and widths thousands of times
def clean_value(prop: str, text: str) -> str | None:
    """The value of `prop` written anew from its tokens, or None when anything in it is not
    on the allowlist (a presentation attribute is a CSS value too)."""
    text = _preprocess(text)
    if "\\" in text:
        return None
    tokens = tinycss2.parse_component_value_list(text, skip_comments=True)
    kept = _value_tokens(tokens, strings=prop.lower() in _FONT_PROPERTIES)
    if kept is None:
        return None
    written = tinycss2.serialize(kept).strip()
    return written if written else None


def clean_declarations(text: str) -> tuple[str, list[str]]:
    """A `style` attribute's declarations: (the kept ones written anew, what was dropped)."""
    text = _preprocess(text)
    items = tinycss2.parse_blocks_contents(text, skip_comments=True, skip_whitespace=True)
    return _declarations(items, _raw_slices(text, items))


def clean_sheet(text: str) -> tuple[str, list[str]]:
    """A `<style>` sheet: (the kept rules written anew, what was dropped)."""
    text = _preprocess(text)
    rules = tinycss2.parse_stylesheet(text, skip_comments=True, skip_whitespace=True)
    return _rules(rules, _raw_slices(text, rules), allow_media=True)


def _rules(
    rules: Sequence[ast.Node], raws: Sequence[str], *, allow_media: bool
) -> tuple[str, list[str]]:
    """Rules written anew; `raws` is each rule's source text, to refuse escapes in it."""
    written: list[str] = []
    dropped: list[str] = []
    for rule, raw in zip(rules, raws, strict=True):
        if isinstance(rule, ast.QualifiedRule):
            selector = _selector(rule.prelude) if "\\" not in raw else None
            if selector is None:
                dropped.append(f"rule {_show(raw.partition('{')[0])}")
                continue
            items = tinycss2.parse_blocks_contents(
                rule.content or [], skip_comments=True, skip_whitespace=True
            )
            declarations, lost = _declarations(items, [""] * len(items))  # raw: checked whole
            dropped += lost
            if declarations:
                written.append(f"{selector}{{{declarations}}}")
        elif (
            isinstance(rule, ast.AtRule)
            and allow_media
            and rule.lower_at_keyword == "media"
            and rule.content is not None
            and "\\" not in raw
            and (query := _media_query(rule.prelude)) is not None
        ):
            inner = tinycss2.parse_rule_list(rule.content, skip_comments=True, skip_whitespace=True)
            body, lost = _rules(inner, [""] * len(inner), allow_media=False)  # raw: checked whole
            dropped += lost
            if body:
                written.append(f"@media {query}{{{body}}}")
        elif isinstance(rule, ast.AtRule):
            dropped.append(f"@{rule.lower_at_keyword} rule")
        else:
            dropped.append("unparsable CSS")
    return "".join(written), dropped


def _declarations(items: Sequence[ast.Node], raws: Sequence[str]) -> tuple[str, list[str]]:
    """Declarations written anew; `raws` is each one's source text, to refuse escapes in it."""
    kept: list[str] = []
    dropped: list[str] = []
    for item, raw in zip(items, raws, strict=True):
        if not isinstance(item, ast.Declaration):
            dropped.append("nested rule" if isinstance(item, ast.QualifiedRule | ast.AtRule)
                           else "unparsable CSS")  # fmt: skip
            continue
        name = item.lower_name
        value = None
        if name in PROPERTIES and "\\" not in raw:
            tokens = _value_tokens(item.value, strings=name in _FONT_PROPERTIES)
            value = tinycss2.serialize(tokens).strip() if tokens is not None else None
        if not value:
            dropped.append(name)
            continue
        kept.append(f"{name}:{value}{' !important' if item.important else ''}")
    return ";".join(kept), dropped


def _value_tokens(
    tokens: Iterable[ast.Node], *, strings: bool, depth: int = 0
) -> list[ast.Node] | None:
    """The tokens as they may be written (a local url normalised), or None if one is refused."""
    if depth > _MAX_DEPTH:
        return None
    kept: list[ast.Node] = []
    for token in tokens:
        match token:
            case ast.WhitespaceToken():
                kept.append(token)
            case ast.IdentToken() if _IDENT.fullmatch(token.value) and token.value[:2] != "--":
                kept.append(token)
            case ast.HashToken() if _COLOUR.fullmatch(token.value):
                kept.append(token)
            case ast.NumberToken() | ast.PercentageToken():
                kept.append(token)
            case ast.DimensionToken() if token.lower_unit in _UNITS:
                kept.append(token)
            case ast.LiteralToken() if token.value in _VALUE_LITERALS:
                kept.append(token)
            case ast.StringToken() if strings and _FONT_NAME.fullmatch(token.value):
                kept.append(token)
            case ast.URLToken() if local := LOCAL_ID.fullmatch(token.value):
                kept.append(_local_url(token, local[1]))
            case ast.FunctionBlock() if token.lower_name == "url":
                local = _quoted_local_id(token.arguments)
                if local is None:
                    return None
                kept.append(_local_url(token, local))
            case ast.FunctionBlock() if token.lower_name in _FUNCTIONS:
                arguments = _value_tokens(token.arguments, strings=False, depth=depth + 1)
                if arguments is None:
                    return None
                kept.append(ast.FunctionBlock(token.source_line, token.source_column,
                                              token.name, arguments))  # fmt: skip
            case _:
                return None
    return kept


def _quoted_local_id(arguments: Sequence[ast.Node]) -> str | None:
    """`url("#id")`: the id, when the only argument is a string naming a local fragment."""
    meaningful = [token for token in arguments if not isinstance(token, ast.WhitespaceToken)]
    if len(meaningful) != 1 or not isinstance(meaningful[0], ast.StringToken):
        return None
    local = LOCAL_ID.fullmatch(meaningful[0].value)
    return local[1] if local else None


def _local_url(token: ast.Node, fragment: str) -> ast.URLToken:
    return ast.URLToken(token.source_line, token.source_column, f"#{fragment}",
                        f"url(#{fragment})")  # fmt: skip


def _selector(tokens: Sequence[ast.Node]) -> str | None:
    """The selector written anew, or None when it holds more than plain selector syntax."""
    if not all(_selector_token(token) for token in tokens):
        return None
    written = tinycss2.serialize(tokens).strip()
    return written or None


def _selector_token(token: ast.Node, *, depth: int = 0) -> bool:
    """Names, classes, ids, combinators, attribute tests and plain pseudo-classes."""
    if depth > _MAX_DEPTH:
        return False
    match token:
        case ast.WhitespaceToken():
            return True
        case ast.IdentToken() | ast.HashToken():
            return _IDENT.fullmatch(token.value) is not None
        case ast.LiteralToken():
            return token.value in _SELECTOR_LITERALS
        case ast.NumberToken() | ast.DimensionToken():  # :nth-child(2n+1)
            return depth > 0
        case ast.SquareBracketsBlock():
            return all(_attribute_test_token(inner) for inner in token.content)
        case ast.FunctionBlock() if token.lower_name in _SELECTOR_FUNCTIONS:
            return all(_selector_token(inner, depth=depth + 1) for inner in token.arguments)
    return False


def _attribute_test_token(token: ast.Node) -> bool:
    """`[name]`, `[name="value"]` and the other matchers, with plain values."""
    match token:
        case ast.WhitespaceToken():
            return True
        case ast.IdentToken():
            return _IDENT.fullmatch(token.value) is not None
        case ast.LiteralToken():
            return token.value in _ATTRIBUTE_LITERALS
        case ast.StringToken():
            return _FONT_NAME.fullmatch(token.value) is not None
    return False


def _media_query(tokens: Sequence[ast.Node]) -> str | None:
    """`screen and (min-width: 10px)`, written anew; None for anything richer."""
    written = tinycss2.serialize(tokens).strip()
    return written if written and all(_media_token(token) for token in tokens) else None


def _media_token(token: ast.Node, depth: int = 0) -> bool:
    if depth > _MAX_DEPTH:
        return False
    match token:
        case ast.WhitespaceToken() | ast.NumberToken() | ast.PercentageToken():
            return True
        case ast.IdentToken():
            return _IDENT.fullmatch(token.value) is not None
        case ast.DimensionToken():
            return token.lower_unit in _UNITS | {"dpi", "dppx", "x"}
        case ast.LiteralToken():
            return token.value in {",", ":", "/"}
        case ast.ParenthesesBlock():
            return all(_media_token(inner, depth + 1) for inner in token.content)
    return False


def clean_media(text: str) -> str | None:
    """A `media` attribute's query written anew, or None when it is more than a plain one."""
    text = _preprocess(text)
    if "\\" in text:
        return None
    return _media_query(tinycss2.parse_component_value_list(text, skip_comments=True))


def _preprocess(text: str) -> str:
    """CSS's own input preprocessing, so that token positions count lines as the text does."""
    return _NEWLINES.sub("\n", text).replace("\0", "\ufffd")


def _raw_slices(text: str, items: Sequence[ast.Node]) -> list[str]:
    """The source text of each item: from where it starts to where the next one does."""
    starts = [0]
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    offsets = [starts[item.source_line - 1] + item.source_column - 1 for item in items]
    ends = [*offsets[1:], len(text)]
    return [text[start:end] for start, end in zip(offsets, ends, strict=False)]


def _show(value: str, limit: int = 60) -> str:
    value = value.strip()
    return repr(value if len(value) <= limit else value[:limit] + "…")
