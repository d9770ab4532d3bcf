"""Markdown from the model, rendered as HTML that is safe to put in a page.

Model output is untrusted: a prompt-injected answer can carry HTML, script URLs or images
that would leak the conversation through their URL. So raw HTML is shown as text, only
http(s), mailto and relative links become links, images are never loaded (they become a
link to the image), and the result goes through nh3 with an allow-list of exactly the tags
and attributes produced here, in case a renderer rule ever lets something through.

``static/js/markdown.js`` applies the same rules in the browser while an answer streams in;
change both together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml, unescapeAll
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

MAX_INPUT_CHARS = 400_000
# Pygments lexers are regular-expression machines; a huge block is shown plain rather than
# risk one pathological pattern holding a worker.
MAX_HIGHLIGHT_CHARS = 100_000

LINK_REL = "nofollow noopener noreferrer"
_ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
_IMAGE_SCHEMES = frozenset({"http", "https"})
# A scheme is whatever stands before a colon that comes before any "/", "?" or "#". This is
# wider than RFC 3986's scheme syntax on purpose: "java%09script:" is not a valid scheme,
# and it is refused rather than treated as a relative path.
_SCHEME = re.compile(r"^([^/?#]*):")
_LANGUAGE = re.compile(r"^[A-Za-z0-9_+#.-]{1,40}$")

_ALLOWED_TAGS = frozenset(
    {
        "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
        "ul", "ol", "li", "em", "strong", "s", "code", "pre", "span", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "rel", "target", "class"},
    "pre": {"class", "data-language"},
    "code": {"class"},
    "span": {"class"},
    "p": {"class"},
    "ol": {"start"},
}
# Table column alignment is a class (markdown-it writes style="text-align:…", which the
# Content-Security-Policy refuses): only these values stay.
_ALIGN_CLASSES = {"md-align-left", "md-align-center", "md-align-right"}
_ALLOWED_ATTRIBUTE_VALUES = {"th": {"class": _ALIGN_CLASSES}, "td": {"class": _ALIGN_CLASSES}}
_ALIGN_STYLE = re.compile(r"^text-align:(left|center|right)$")


def render_markdown(text: str) -> str:
    """Render untrusted Markdown as HTML that contains no script, no raw HTML, no images."""
    note = ""
    if len(text) > MAX_INPUT_CHARS:
        note = (
            '<p class="md-truncated">'
            f"(Truncated: showing the first {MAX_INPUT_CHARS:,} of {len(text):,} characters.)"
            "</p>"
        )
        text = text[:MAX_INPUT_CHARS]
    html = _MARKDOWN.render(text) + note
    return nh3.clean(
        html,
        tags=set(_ALLOWED_TAGS),
        attributes=_ALLOWED_ATTRIBUTES,
        tag_attribute_values=_ALLOWED_ATTRIBUTE_VALUES,
        # The renderer writes rel itself (nh3's default would replace it, without nofollow).
        link_rel=None,
        url_schemes=set(_ALLOWED_SCHEMES),
    )


def is_safe_link(url: str) -> bool:
    """Whether a normalized link target may become an href: http(s), mailto or relative."""
    match = _SCHEME.match(url.strip())
    return match is None or match.group(1).lower() in _ALLOWED_SCHEMES


def _link_scheme(url: str) -> str:
    match = _SCHEME.match(url.strip())
    return match.group(1).lower() if match else ""


def _language(info: str) -> str:
    """The fence's language (first word of its info string) when it looks like one."""
    words = unescapeAll(info).split()
    if words and _LANGUAGE.match(words[0]):
        return words[0].lower()
    return ""


def _code_block_html(code: str, language: str) -> str:
    body = _highlighted(code, language) if language else None
    if body is None:
        body = escapeHtml(code)
    code_class = f' class="language-{escapeHtml(language)}"' if language else ""
    return (
        f'<pre class="highlight" data-language="{escapeHtml(language or "text")}">'
        f"<code{code_class}>{body}</code></pre>\n"
    )


def _highlighted(code: str, language: str) -> str | None:
    if len(code) > MAX_HIGHLIGHT_CHARS:
        return None
    try:
        lexer = get_lexer_by_name(language, stripnl=False, ensurenl=False)
    except ClassNotFound:
        return None
    return highlight(code, lexer, _FORMATTER)


def _render_fence(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any
) -> str:
    token = tokens[idx]
    return _code_block_html(token.content, _language(token.info))


def _render_code_block(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any
) -> str:
    return _code_block_html(tokens[idx].content, "")


def _render_link_open(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any
) -> str:
    token = tokens[idx]
    href = str(token.attrGet("href") or "")
    # In-page anchors stay in the tab and need no protection from the target page.
    if not href.startswith("#"):
        token.attrSet("rel", LINK_REL)
        token.attrSet("target", "_blank")
    return renderer.renderToken(tokens, idx, options, env)


def _render_image(
    renderer: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: Any
) -> str:
    token = tokens[idx]
    alt = escapeHtml(renderer.renderInlineAsText(token.children or [], options, env))
    src = str(token.attrGet("src") or "")
    if _link_scheme(src) not in _IMAGE_SCHEMES:
        return alt
    return (
        f'<a href="{escapeHtml(src)}" class="md-image-link" rel="{LINK_REL}" target="_blank">'
        f"🖼 {alt or 'image'}</a>"
    )


def _align_as_class(state: StateCore) -> None:
    """Table cells' style="text-align:…" becomes class="md-align-…"."""
    for token in state.tokens:
        if token.type not in {"th_open", "td_open"}:
            continue
        match = _ALIGN_STYLE.match(str(token.attrs.pop("style", "")))
        if match:
            token.attrSet("class", f"md-align-{match.group(1)}")


def _build_markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    # Checked after markdown-it has decoded entities and percent-encoded the target, so
    # "&#106;avascript:" and " javascript:" are judged as what the browser would see.
    md.validateLink = is_safe_link  # type: ignore[method-assign]
    md.add_render_rule("fence", _render_fence)
    md.add_render_rule("code_block", _render_code_block)
    md.add_render_rule("link_open", _render_link_open)
    md.add_render_rule("image", _render_image)
    md.core.ruler.push("align_as_class", _align_as_class)
    return md


_FORMATTER = HtmlFormatter(nowrap=True)
_MARKDOWN = _build_markdown()
