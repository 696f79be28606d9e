"""Answer text to safe HTML: Markdown for a chat model, quotations for the offline answerer.

Both kinds of text are untrusted: a model can be steered by a hostile document
and the extractive answerer quotes documents as written. So Markdown is parsed
with raw HTML off, citation markers are rewritten on the token stream (never
by pattern over HTML, where a marker could sit inside an attribute), images
become their alt text (an <img> would fetch a URL of the model's choosing as
soon as the answer shows) and the result goes through nh3, an allow-list
sanitiser, which decides alone what reaches the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from urllib.parse import unquote

import nh3
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

CitationHref = Callable[[int], str | None]

# Markers arrive normalised, one number per bracket (ragapp.answers.citations).
_MARKER = re.compile(r"\[(\d{1,3})\]")
# A quoted sentence of ExtractiveAnswer.text(): “sentence” [n].
_QUOTED = re.compile(r"“(?P<sentence>.*)”(?P<markers>(?:\s*\[\d{1,3}\])*)\s*", re.S)
_SCHEME = re.compile(r"([a-z][a-z0-9+.\-]*):")
# Whitespace and C0/C1 controls, which browsers drop or tolerate inside a scheme.
_IGNORED_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202f\ufeff]")
_URL_SCHEMES = {"http", "https", "mailto"}

_TAGS = {
    "p", "br", "strong", "em", "del", "code", "pre", "blockquote", "hr",
    "ul", "ol", "li", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title", "data-marker"}, "ol": {"start"}}
_ALIGN_CLASSES = {"align-left", "align-center", "align-right"}
_CLASSES = {"a": {"cite"}, "th": _ALIGN_CLASSES, "td": _ALIGN_CLASSES}


def render_answer(text: str, *, citation_href: CitationHref) -> SafeString:
    """Render a chat model's Markdown answer, its markers linked to their sources."""
    env: EnvType = {"citation_href": citation_href}
    return _sanitised(_MARKDOWN.render(text, env))


def render_extractive(text: str, *, citation_href: CitationHref) -> SafeString:
    """Render the offline answer: each quoted sentence a blockquote, nothing as Markdown.

    The sentences are a document's words; a "**" or "<script>" in them is
    shown as written, so only the paragraph breaks and markers of
    ExtractiveAnswer.text() carry meaning here.
    """
    parts: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        quoted = _QUOTED.fullmatch(paragraph)
        if quoted:
            sentence = escape(quoted["sentence"].strip())
            cites = _linked(quoted["markers"].strip(), citation_href)
            parts.append(f"<blockquote><p>{sentence} {cites}</p></blockquote>")
        elif paragraph:
            parts.append(f"<p>{_linked(paragraph, citation_href)}</p>")
    return _sanitised("\n".join(parts))


def _linked(text: str, citation_href: CitationHref) -> str:
    """Escape plain text, turning each marker with a source into a citation link."""
    pieces: list[str] = []
    last = 0
    for match in _MARKER.finditer(text):
        href = citation_href(int(match[1]))
        if href is None:
            continue
        pieces.append(escape(text[last : match.start()]))
        pieces.append(
            format_html(
                '<a class="cite" href="{}" data-marker="{}">[{}]</a>',
                href,
                match[1],
                match[1],
            )
        )
        last = match.end()
    pieces.append(escape(text[last:]))
    return "".join(pieces)


def _sanitised(html: str) -> SafeString:
    cleaned = nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        allowed_classes=_CLASSES,
        url_schemes=_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # Safe: nh3 kept only the tags, attributes, classes and URL schemes above,
    # none of which can run script or fetch anything on its own.
    return mark_safe(cleaned)  # noqa: S308


# --- markdown-it configuration ------------------------------------------------


def _link_allowed(url: str) -> bool:
    """Allow only http, https, mailto and relative links.

    markdown-it's own check is a deny-list that lets "jav%09ascript:" and
    data:image/* through; this one decodes percent and entity escapes (more
    than once, as a second decoding somewhere downstream could), drops what a
    browser ignores, and allows instead of denies.
    """
    plain = url
    for _round in range(3):  # decoding twice must not reveal a scheme either
        plain = _IGNORED_IN_URL.sub("", html.unescape(unquote(plain)))
    plain = plain.lower()
    scheme = _SCHEME.match(plain)
    return scheme is None or scheme[1] in _URL_SCHEMES


def _reserve_marker_labels(state: StateCore) -> None:
    """Forget reference definitions named like a marker.

    "[1]: https://elsewhere" would otherwise turn every "[1]" into a link that
    looks like a citation but points where the model chose.
    """
    references = state.env.get("references", {})
    for label in [label for label in references if label.strip().isdigit()]:
        del references[label]


def _rewrite_tokens(state: StateCore) -> None:
    """Link markers, lower headings below the page's own, keep table alignment as a class."""
    citation_href: CitationHref = state.env.get("citation_href", lambda _n: None)
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            # The answer sits under the page's h1 and the turn's headings.
            token.tag = f"h{min(int(token.tag[1]) + 2, 6)}"
        elif token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", ""))
            if style.startswith("text-align:"):
                token.attrSet("class", "align-" + style.removeprefix("text-align:"))
        elif token.type == "inline" and token.children:
            token.children = _with_citations(token.children, citation_href)


def _with_citations(
    children: Sequence[Token], citation_href: CitationHref
) -> list[Token]:
    """Split text tokens around markers; code spans and link text stay as they are."""
    result: list[Token] = []
    in_link = 0
    for token in children:
        if token.type in ("s_open", "s_close"):
            token.tag = "del"
        in_link += {"link_open": 1, "link_close": -1}.get(token.type, 0)
        if token.type != "text" or in_link or not _MARKER.search(token.content):
            result.append(token)
            continue
        last = 0
        for match in _MARKER.finditer(token.content):
            href = citation_href(int(match[1]))
            if href is None:
                continue
            result.append(_text(token.content[last : match.start()]))
            link = Token("link_open", "a", 1)
            link.attrs = {"class": "cite", "href": href, "data-marker": match[1]}
            result += [link, _text(match[0]), Token("link_close", "a", -1)]
            last = match.end()
        result.append(_text(token.content[last:]))
    return result


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def _image_as_alt(
    self: RendererHTML,
    tokens: Sequence[Token],
    idx: int,
    options: OptionsDict,
    env: EnvType,
) -> str:
    """Show an image as its alt text: fetching it could carry data to any host."""
    return escape(self.renderInlineAsText(tokens[idx].children or [], options, env))


def _markdown() -> MarkdownIt:
    # "commonmark" plus tables and strikethrough rather than "gfm-like", which
    # turns raw HTML and linkify on (and needs linkify-it-py): both are off.
    md = MarkdownIt(
        "commonmark", {"html": False, "linkify": False, "typographer": False}
    ).enable(["table", "strikethrough"])
    md.validateLink = _link_allowed  # type: ignore[method-assign]
    md.core.ruler.after("block", "reserve_marker_labels", _reserve_marker_labels)
    md.core.ruler.push("rewrite_tokens", _rewrite_tokens)
    md.add_render_rule("image", _image_as_alt)
    return md


_MARKDOWN = _markdown()
