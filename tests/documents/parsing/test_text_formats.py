"""Plain text, Markdown and HTML: encodings, structure and hidden text."""

from __future__ import annotations

import pytest

from ragapp.documents.parsing import (
    ParseError,
    ParseLimits,
    UnsupportedTypeError,
    parse_bytes,
)
from ragapp.documents.parsing.base import HTML, MARKDOWN, PLAIN_TEXT

LIMITS = ParseLimits()
CP1252_TEXT = (
    "The caf\u00e9\u2019s \u201cspecial\u201d costs 5€ — a naïve façade.\n\n"
    "Überraschung für Jürgen, résumé attached.\n"
)
SHIFT_JIS_TEXT = (
    "日本語のテキストです。これはシフトJISでエンコードされています。\n\n"
    "東京都の天気は晴れです。明日は雨が降るでしょう。\n"
)


def texts(document) -> list[str]:
    return [block.text for block in document.blocks]


def test_plain_text_splits_paragraphs_on_blank_lines():
    data = b"First paragraph\nstill first.\n\n\nSecond paragraph.\r\n\r\nThird.\n"
    document = parse_bytes(data, content_type=PLAIN_TEXT, limits=LIMITS)
    assert texts(document) == [
        "First paragraph\nstill first.",
        "Second paragraph.",
        "Third.",
    ]
    assert {block.kind for block in document.blocks} == {"paragraph"}
    assert document.page_count is None


def test_cp1252_text_is_decoded_as_cp1252():
    data = CP1252_TEXT.encode("cp1252")
    document = parse_bytes(data, content_type=PLAIN_TEXT, limits=LIMITS)
    assert texts(document) == [part.strip() for part in CP1252_TEXT.split("\n\n")]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Café crème, naïve résumé — déjà vu. " * 20, "cp1252"),
        ("El niño pidió café. ¿Dónde está la estación? " * 5, "cp1252"),
        ("Zażółć gęślą jaźń. Łódź i Kraków są pięknymi miastami. " * 10, "cp1250"),
        ("Привет, как дела? Это русский текст. " * 10, "cp1251"),
        ("Καλημέρα κόσμε, αυτό είναι ελληνικό κείμενο. " * 5, "cp1253"),
    ],
)
def test_legacy_code_pages_are_told_apart(text, encoding):
    document = parse_bytes(
        text.encode(encoding), content_type=PLAIN_TEXT, limits=LIMITS
    )
    assert texts(document) == [text.strip()]


def test_utf16_with_bom_is_decoded():
    data = CP1252_TEXT.encode("utf-16")
    assert data.startswith((b"\xff\xfe", b"\xfe\xff"))
    document = parse_bytes(data, content_type=PLAIN_TEXT, limits=LIMITS)
    assert "naïve façade" in texts(document)[0]


def test_utf16_without_bom_is_decoded():
    data = "Plain ASCII words in UTF-16.\n\nSecond.".encode("utf-16-le")
    document = parse_bytes(data, content_type=PLAIN_TEXT, limits=LIMITS)
    assert texts(document) == ["Plain ASCII words in UTF-16.", "Second."]


def test_shift_jis_text_is_decoded():
    data = SHIFT_JIS_TEXT.encode("shift_jis")
    document = parse_bytes(data, content_type=PLAIN_TEXT, limits=LIMITS)
    assert texts(document) == [part.strip() for part in SHIFT_JIS_TEXT.split("\n\n")]


def test_utf8_with_bom_drops_the_bom():
    document = parse_bytes(b"\xef\xbb\xbfHello", content_type=PLAIN_TEXT, limits=LIMITS)
    assert texts(document) == ["Hello"]


def test_nul_filled_binary_is_refused():
    with pytest.raises(UnsupportedTypeError, match="binary data") as caught:
        parse_bytes(b"abc" + bytes(4000), content_type=PLAIN_TEXT, limits=LIMITS)
    assert caught.value.code == "binary"


def test_whitespace_only_text_is_empty():
    with pytest.raises(ParseError) as caught:
        parse_bytes(b" \n\n \n", content_type=PLAIN_TEXT, limits=LIMITS)
    assert caught.value.code == "empty"


def test_text_over_the_character_limit_is_too_large():
    with pytest.raises(ParseError, match="more than 100 characters") as caught:
        parse_bytes(
            b"word " * 100, content_type=PLAIN_TEXT, limits=ParseLimits(max_chars=100)
        )
    assert caught.value.code == "too_large"


MARKDOWN_DOC = """\
---
title: Operations handbook
---
# Handbook

Intro paragraph
over two lines.

## 2 Scope

- first item
- second item
  continued
1. numbered item

```python
print("# not a heading")
```

### 2.1 Terms

| Term | Meaning |
| ---- | ------- |
| RAG  | retrieval |

Setext heading
==============

Last words.
"""


def test_markdown_keeps_headings_lists_code_and_tables():
    document = parse_bytes(MARKDOWN_DOC.encode(), content_type=MARKDOWN, limits=LIMITS)
    blocks = [(b.kind, b.heading, b.text) for b in document.blocks]
    assert document.title == "Operations handbook"
    assert blocks == [
        ("heading", "Handbook", "Handbook"),
        ("paragraph", "Handbook", "Intro paragraph\nover two lines."),
        ("heading", "Handbook > 2 Scope", "2 Scope"),
        ("list_item", "Handbook > 2 Scope", "- first item"),
        ("list_item", "Handbook > 2 Scope", "- second item\ncontinued"),
        ("list_item", "Handbook > 2 Scope", "1. numbered item"),
        ("other", "Handbook > 2 Scope", 'print("# not a heading")'),
        ("heading", "Handbook > 2 Scope > 2.1 Terms", "2.1 Terms"),
        (
            "table",
            "Handbook > 2 Scope > 2.1 Terms",
            "| Term | Meaning |\n| ---- | ------- |\n| RAG  | retrieval |",
        ),
        ("heading", "Setext heading", "Setext heading"),
        ("paragraph", "Setext heading", "Last words."),
    ]


def test_markdown_title_falls_back_to_the_first_heading():
    document = parse_bytes(
        b"Preamble.\n\n# Real title\n\nBody.", content_type=MARKDOWN, limits=LIMITS
    )
    assert document.title == "Real title"


HOSTILE_PAGE = """\
<!DOCTYPE html>
<html><head>
<title>Visitor guide</title>
<style>body { color: red } .secret { display: none }</style>
<script>var s = "SCRIPT-TEXT";</script>
<link rel="stylesheet" href="http://127.0.0.2:9/x.css">
</head>
<body>
<nav>NAV-TEXT <a href="/">Home</a></nav>
<header role="banner">BANNER-TEXT</header>
<main>
  <h1>Opening hours</h1>
  <p>The museum opens at <b>nine</b> and closes at five.</p>
  <!-- COMMENT-TEXT -->
  <div hidden>HIDDEN-ATTR-TEXT</div>
  <div aria-hidden="true">ARIA-HIDDEN-TEXT</div>
  <p style="color: blue; display:none">INLINE-NONE-TEXT</p>
  <span style="visibility: hidden">INVISIBLE-TEXT</span>
  <noscript>NOSCRIPT-TEXT</noscript>
  <template><p>TEMPLATE-TEXT</p></template>
  <h2>Tickets</h2>
  <ul><li>Adults pay ten euros.</li><li>Children enter free.</li></ul>
  <table><tr><th>Day</th><th>Hours</th></tr><tr><td>Monday</td><td>closed</td></tr></table>
  <pre>line one
  line two</pre>
  <img src="http://127.0.0.2:9/pixel.png" alt="">
  <iframe src="http://127.0.0.2:9/frame">IFRAME-TEXT</iframe>
  <p>Tail after <script>document.write("INLINE-SCRIPT")</script>the script stays.</p>
</main>
<footer>FOOTER-TEXT</footer>
<script>SCRIPT-AT-END</script>
</body></html>
"""


def test_html_keeps_only_visible_main_text():
    document = parse_bytes(HOSTILE_PAGE.encode(), content_type=HTML, limits=LIMITS)
    everything = "\n".join(texts(document))
    for hidden in [
        "SCRIPT-TEXT", "NAV-TEXT", "BANNER-TEXT", "COMMENT-TEXT", "HIDDEN-ATTR-TEXT",
        "ARIA-HIDDEN-TEXT", "INLINE-NONE-TEXT", "INVISIBLE-TEXT", "NOSCRIPT-TEXT",
        "TEMPLATE-TEXT", "IFRAME-TEXT", "INLINE-SCRIPT", "FOOTER-TEXT",
        "SCRIPT-AT-END", "color: red", "127.0.0.2",
    ]:  # fmt: skip
        assert hidden not in everything
    assert document.title == "Visitor guide"
    assert [(b.kind, b.heading, b.text) for b in document.blocks] == [
        ("heading", "Opening hours", "Opening hours"),
        ("paragraph", "Opening hours", "The museum opens at nine and closes at five."),
        ("heading", "Opening hours > Tickets", "Tickets"),
        ("list_item", "Opening hours > Tickets", "Adults pay ten euros."),
        ("list_item", "Opening hours > Tickets", "Children enter free."),
        ("table", "Opening hours > Tickets", "Day | Hours\nMonday | closed"),
        ("other", "Opening hours > Tickets", "line one\n  line two"),
        ("paragraph", "Opening hours > Tickets", "Tail after the script stays."),
    ]


def test_html_in_a_legacy_encoding_is_decoded():
    page = '<html><head><meta charset="windows-1252"></head><body><p>Café “open”</p></body></html>'
    document = parse_bytes(page.encode("cp1252"), content_type=HTML, limits=LIMITS)
    assert texts(document) == ["Café “open”"]


def test_html_with_an_xml_declaration_parses():
    page = '<?xml version="1.0" encoding="UTF-8"?><html><body><h1>T</h1><p>x</p></body></html>'
    document = parse_bytes(page.encode(), content_type=HTML, limits=LIMITS)
    assert texts(document) == ["T", "x"]


def test_html_with_nothing_visible_is_empty():
    page = b"<html><head><script>x()</script></head><body><div hidden>gone</div></body></html>"
    with pytest.raises(ParseError) as caught:
        parse_bytes(page, content_type=HTML, limits=LIMITS)
    assert caught.value.code == "empty"


def test_deeply_nested_html_ends_in_a_parse_error_or_text():
    page = (
        b"<html><body>"
        + b"<div>" * 50_000
        + b"deep"
        + b"</div>" * 50_000
        + b"</body></html>"
    )
    try:
        document = parse_bytes(page, content_type=HTML, limits=LIMITS)
    except ParseError:
        return
    assert isinstance(document.blocks, list)
