"""Answer rendering: Markdown and quotations to safe HTML, markers to citation links (T10)."""

import html
import re
from urllib.parse import unquote, urlsplit

import lxml.html
import pytest

from ragapp.answers.extractive import INTRO, ExtractiveAnswer
from ragapp.retrieval.rerank import ScoredSentence
from ragapp.web.rendering import render_answer, render_extractive
from tests.web.xss_payloads import LEAK, PAYLOADS

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "hr",
    "ul", "ol", "li", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "rel", "class", "data-marker"},
    "ol": {"start"},
    "th": {"class"},
    "td": {"class"},
}
ALLOWED_CLASSES = {"cite", "align-left", "align-center", "align-right"}
FORBIDDEN_TAGS = {
    "img", "iframe", "script", "object", "embed", "svg", "math", "base",
    "meta", "link", "form", "style", "input", "button", "video", "audio",
}  # fmt: skip
_IGNORED_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202f\ufeff]")


def href(marker):
    return f"/ask/citations/{marker}/"


def parse(rendered):
    return lxml.html.fragment_fromstring(
        str(rendered) or "<p></p>", create_parent="div"
    )


def scheme_of(url):
    """The scheme a browser would see, after every decoding an attacker may lean on."""
    plain = _IGNORED_IN_URL.sub("", unquote(html.unescape(url))).lower()
    match = re.match(r"([a-z][a-z0-9+.\-]*):", plain)
    return match[1] if match else None


def assert_safe(rendered):
    root = parse(rendered)
    for element in root.iterdescendants():
        assert isinstance(element.tag, str), f"comment or PI in output: {rendered}"
        assert element.tag in ALLOWED_TAGS, f"<{element.tag}> in {rendered}"
        assert element.tag not in FORBIDDEN_TAGS
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), rendered
            assert name not in {"style", "srcdoc", "formaction", "src", "action"}
            assert name in ALLOWED_ATTRIBUTES.get(element.tag, set()), rendered
            if name == "class":
                assert set(value.split()) <= ALLOWED_CLASSES, rendered
        link = element.get("href")
        if link is not None:
            assert scheme_of(link) in {None, "http", "https", "mailto"}, rendered
            rel = element.get("rel", "").split()
            assert {"noopener", "noreferrer", "nofollow"} <= set(rel), rendered
    return root


def text_of(rendered):
    return parse(rendered).text_content().lower()


# --- Markdown behaviour -------------------------------------------------------


def test_markdown_structure_renders_with_headings_below_the_page_h1():
    rendered = render_answer(
        "# Refunds\n\n## Meals\n\nUp to **35 euros** a *day*, ~~40~~.\n\n"
        "- one\n- two\n\n3. three\n4. four\n\n> quoted\n\n`code` and\n\n"
        "```python\nx = 1\n```\n\n---\n\n| Item | Euros |\n|:--|--:|\n| Meal | 35 |",
        citation_href=href,
    )
    root = assert_safe(rendered)
    assert [h.tag for h in root.iter("h3", "h4")] == ["h3", "h4"]
    assert root.find(".//strong").text == "35 euros"
    assert root.find(".//em").text == "day"
    assert root.find(".//del").text == "40"
    assert [li.text for li in root.iter("li")] == ["one", "two", "three", "four"]
    assert root.find(".//ol").get("start") == "3"
    assert root.find(".//blockquote/p").text == "quoted"
    assert root.find(".//pre/code").text == "x = 1\n"
    assert root.find(".//pre/code").get("class") is None
    assert root.find(".//hr") is not None
    cells = [(c.tag, c.text, c.get("class")) for c in root.iter("th", "td")]
    assert cells == [
        ("th", "Item", "align-left"),
        ("th", "Euros", "align-right"),
        ("td", "Meal", "align-left"),
        ("td", "35", "align-right"),
    ]


def test_markers_become_citation_links_with_the_given_href():
    rendered = render_answer("Meals are refunded [1][2].", citation_href=href)
    assert str(rendered) == (
        '<p>Meals are refunded <a class="cite" href="/ask/citations/1/" '
        'data-marker="1" rel="noopener noreferrer nofollow">[1]</a>'
        '<a class="cite" href="/ask/citations/2/" data-marker="2" '
        'rel="noopener noreferrer nofollow">[2]</a>.</p>\n'
    )


def test_markers_in_code_stay_text():
    rendered = render_answer(
        "`a[1]` and\n\n```\nb[2]\n```\n\n    c[3]", citation_href=href
    )
    root = assert_safe(rendered)
    assert root.find(".//a") is None
    assert [c.text for c in root.iter("code")] == ["a[1]", "b[2]\n", "c[3]\n"]


def test_marker_without_a_source_stays_plain_text():
    rendered = render_answer(
        "Known [1], unknown [7].", citation_href=lambda n: href(n) if n == 1 else None
    )
    root = assert_safe(rendered)
    assert [a.get("data-marker") for a in root.iter("a")] == ["1"]
    assert "unknown [7]." in root.text_content()


def test_marker_inside_link_text_is_not_nested_as_a_citation():
    root = assert_safe(
        render_answer("[see [1]](https://a.example/)", citation_href=href)
    )
    links = list(root.iter("a"))
    assert len(links) == 1
    assert links[0].get("class") is None
    assert links[0].text_content() == "see [1]"


def test_reference_definition_cannot_hijack_a_marker():
    rendered = render_answer(
        "Policy [1].\n\n[1]: http://127.0.0.2:9/elsewhere", citation_href=href
    )
    root = assert_safe(rendered)
    assert [a.get("href") for a in root.iter("a")] == ["/ask/citations/1/"]


def test_links_get_rel_forced_and_mailto_is_kept():
    root = assert_safe(
        render_answer(
            "[site](https://example.org/x) <mailto:hr@example.org> <hr@example.org>",
            citation_href=href,
        )
    )
    links = list(root.iter("a"))
    assert [a.get("href") for a in links] == [
        "https://example.org/x",
        "mailto:hr@example.org",
        "mailto:hr@example.org",
    ]
    assert {a.get("rel") for a in links} == {"noopener noreferrer nofollow"}


def test_relative_citation_href_survives_sanitising():
    rendered = render_answer(
        "See [4].", citation_href=lambda n: f"/ask/threads/9/citations/{n}/?x=1&y=2"
    )
    link = parse(rendered).find(".//a")
    assert link.get("href") == "/ask/threads/9/citations/4/?x=1&y=2"
    assert link.get("data-marker") == "4"


@pytest.mark.parametrize("render", [render_answer, render_extractive])
@pytest.mark.parametrize(
    "hostile",
    [
        "javascript:alert(1)",
        '"><script>alert(1)</script>',
        '/x" onmouseover="alert(1)',
        " jav\tascript:alert(1)",
    ],
)
def test_a_hostile_citation_href_cannot_inject(render, hostile):
    rendered = render("Claim “x” [1]", citation_href=lambda _n: hostile)
    root = assert_safe(rendered)
    assert "script" not in {e.tag for e in root.iter()}
    link = root.find(".//a")
    assert link.get("onmouseover") is None
    assert scheme_of(link.get("href", "")) != "javascript"


def test_images_render_as_alt_text_and_never_request():
    rendered = render_answer(
        f"Before ![the secret]({LEAK}) after\n\n![ref][i]\n\n[i]: {LEAK}",
        citation_href=href,
    )
    root = assert_safe(rendered)
    assert "127.0.0.2" not in str(rendered)
    assert root.text_content().split() == ["Before", "the", "secret", "after", "ref"]


def test_offsite_link_is_only_clickable_with_noreferrer():
    root = assert_safe(render_answer(f"[leak]({LEAK}) <{LEAK}>", citation_href=href))
    for element in root.iterdescendants():
        assert "src" not in element.attrib
    for link in root.iter("a"):
        assert urlsplit(link.get("href")).hostname == "127.0.0.2"
        assert "noreferrer" in link.get("rel").split()


# --- Extractive behaviour -----------------------------------------------------


def extractive_text(*sentences):
    return ExtractiveAnswer(
        sentences=[
            ScoredSentence(owner=owner, sentence=sentence, score=0.9)
            for owner, sentence in sentences
        ],
        best_score=0.9,
    ).text()


def test_extractive_sentences_render_as_cited_quotations():
    text = extractive_text(
        (1, "Meals are refunded up to 35 euros."), (2, "Trains: 2nd.")
    )
    root = assert_safe(render_extractive(text, citation_href=href))
    assert root.find("p").text == INTRO
    quotes = root.findall("blockquote")
    assert [q.text_content() for q in quotes] == [
        "Meals are refunded up to 35 euros. [1]",
        "Trains: 2nd. [2]",
    ]
    assert [q.find(".//a").get("href") for q in quotes] == [
        "/ask/citations/1/",
        "/ask/citations/2/",
    ]


def test_extractive_document_text_is_never_markdown_or_html():
    text = extractive_text((1, "Use **bold** and <script>alert(1)</script> [2, 3]."))
    rendered = render_extractive(text, citation_href=href)
    root = assert_safe(rendered)
    quote = root.find("blockquote")
    assert quote.find(".//strong") is None
    assert quote.text_content() == (
        "Use **bold** and <script>alert(1)</script> (2, 3). [1]"
    )
    assert [a.get("data-marker") for a in root.iter("a")] == ["1"]


def test_extractive_marker_without_a_source_stays_plain():
    text = extractive_text((1, "A."), (2, "B."))
    root = assert_safe(
        render_extractive(text, citation_href=lambda n: None if n == 2 else href(n))
    )
    assert [a.get("data-marker") for a in root.iter("a")] == ["1"]
    assert root.findall("blockquote")[1].text_content() == "B. [2]"


def test_extractive_not_found_text_is_a_paragraph():
    root = assert_safe(
        render_extractive(
            "Your documents do not seem to answer this.", citation_href=href
        )
    )
    assert [e.tag for e in root] == ["p"]


# --- T10 payload corpus ---------------------------------------------------------


def test_corpus_has_at_least_300_payloads():
    assert len(PAYLOADS) >= 300
    assert len({p.name for p in PAYLOADS}) == len(PAYLOADS)


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_payload_renders_safely_and_stays_visible(payload):
    outputs = {
        "markdown": render_answer(payload.text, citation_href=href),
        "extractive": render_extractive(payload.text, citation_href=href),
        "extractive-quoted": render_extractive(
            f"{INTRO}\n\n“{payload.text}” [1]", citation_href=href
        ),
    }
    for kind, rendered in outputs.items():
        assert_safe(rendered)
        assert "127.0.0.2" not in "".join(
            e.get("src", "") for e in parse(rendered).iter()
        )
        if payload.visible is not None:
            assert payload.visible in text_of(rendered), (kind, str(rendered))
