"""static/js/markdown.js in real Chromium: the same safety rules and HTML as the server."""

from __future__ import annotations

from pathlib import Path

import pytest

from qweb.lib.markdown import render_markdown
from tests.lib.test_markdown import XSS_VECTORS

pytestmark = pytest.mark.e2e

STATIC = Path(__file__).resolve().parents[2] / "static"
SCRIPTS = [
    STATIC / "vendor" / "markdown-it" / "markdown-it.min.js",
    STATIC / "vendor" / "highlight" / "highlight.min.js",
    STATIC / "js" / "markdown.js",
]

# Documents whose rendering involves no syntax highlighting (Pygments and highlight.js
# colour differently), so the browser's HTML must equal the server's.
SAME_AS_SERVER = [
    "# Title\n\n- one\n- *two*\n\n1. **first**\n\n> quoted `code`\n",
    "| name | kind | size | note |\n|:-----|:-:|-----:|---|\n| a.py | py | 12 | x |\n\n~~old~~ new",
    '[docs](https://docs.example/a?b=1&c=2 "The docs") [mail](mailto:a@b.example) [x](#y)',
    "<https://auto.example> [rel](/w/acme) [up](../x)",
    "![diagram *v2*](https://img.example/d.png) ![](http://i.example/a.png) ![c](/c.png)",
    "```nosuchlanguage\nif a < b: <b>x</b>\n```\n\n```\nplain\n```\n\n    indented\n",
    "Quotes \"here\" & 'there' <b>raw</b>",
    *(vector for vector in XSS_VECTORS if "```python" not in vector),
]


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # Served from an intercepted https URL (nothing leaves the machine) so that the page is
    # a secure context, as qweb's pages are, and navigator.clipboard exists.
    page.route(
        "https://qweb.test/",
        lambda route: route.fulfill(
            content_type="text/html", body="<!doctype html><html><body><div id=out></div>"
        ),
    )
    page.goto("https://qweb.test/")
    for script in SCRIPTS:
        page.add_script_tag(path=str(script))
    yield page
    context.close()
    assert errors == []


def render(page, text: str) -> str:
    return page.evaluate("text => window.qwebMarkdown.render(text)", text)


def as_dom(page, html: str) -> str:
    """The HTML as the browser serialises it after parsing, so both sides compare alike."""
    return page.evaluate(
        "html => { const t = document.createElement('template'); t.innerHTML = html;"
        " return t.innerHTML; }",
        html,
    )


@pytest.mark.parametrize("source", XSS_VECTORS)
def test_untrusted_markup_renders_as_harmless_text_in_the_browser(page, source):
    html = render(page, source)

    found = page.evaluate(
        """html => {
            const out = document.getElementById('out');
            out.innerHTML = html;
            const hrefs = [...out.querySelectorAll('[href]')].map(a => a.getAttribute('href'));
            const handlers = [...out.querySelectorAll('*')]
                .flatMap(el => [...el.attributes].map(a => a.name))
                .filter(name => name.startsWith('on'));
            return {
                dangerous: out.querySelectorAll('script, img, iframe, svg, object, embed').length,
                hrefs, handlers,
            };
        }""",
        html,
    )

    assert "<script" not in html
    assert "<img" not in html
    assert found["dangerous"] == 0
    assert found["handlers"] == []
    for href in found["hrefs"]:
        assert href.startswith(("https:", "http:", "mailto:", "#", "/")), html


@pytest.mark.parametrize(
    "source", [vector for vector in XSS_VECTORS if vector.startswith(("[click]", "<javascript"))]
)
def test_a_script_url_is_never_a_link_in_the_browser(page, source):
    html = render(page, source)

    assert "<a " not in html
    assert "href" not in html


@pytest.mark.parametrize("source", SAME_AS_SERVER)
def test_the_browser_renders_the_same_html_as_the_server(page, source):
    assert as_dom(page, render(page, source)) == as_dom(page, render_markdown(source))


def test_table_alignment_is_a_class_the_pages_policy_allows_not_a_style(page):
    html = render(page, "| a | b | c |\n|:--|:-:|--:|\n| 1 | 2 | 3 |\n")

    assert '<th class="md-align-left">a</th>' in html
    assert '<td class="md-align-center">2</td>' in html
    assert '<td class="md-align-right">3</td>' in html
    assert "style=" not in html


def test_a_python_fence_is_highlighted_by_highlight_js_in_the_server_shape(page):
    html = render(page, "```python\ndef area(r):\n    return 3.14 * r  # pi\n```\n")

    assert html.startswith(
        '<pre class="highlight" data-language="python"><code class="language-python">'
    )
    assert '<span class="hljs-keyword">def</span>' in html
    assert '<span class="hljs-comment"># pi</span>' in html


def test_a_language_unknown_to_highlight_js_is_plain_escaped_code(page):
    html = render(page, "```nosuchlanguage\n<b>x</b>\n```\n")

    assert html == (
        '<pre class="highlight" data-language="nosuchlanguage">'
        '<code class="language-nosuchlanguage">&lt;b&gt;x&lt;/b&gt;\n</code></pre>\n'
    )


@pytest.mark.parametrize(
    "partial",
    [
        "Here is the fix:\n\n```python\ndef area(r):\n    return",
        "```",
        "| a | b |\n|---|",
        "[half a link](https://exa",
        "**bold and `code",
        "> - [ ] ~~",
    ],
)
def test_partial_text_mid_stream_renders_without_error(page, partial):
    html = render(page, partial)

    assert isinstance(html, str)
    assert "<script" not in html


def test_an_unclosed_fence_shows_the_highlighted_code_that_has_arrived(page):
    html = render(page, "Here:\n\n```python\nimport os\n")

    assert '<pre class="highlight" data-language="python">' in html
    assert '<span class="hljs-keyword">import</span>' in html


def test_a_huge_answer_is_truncated_with_the_servers_note(page):
    html = page.evaluate("() => window.qwebMarkdown.render('word '.repeat(100000))")

    assert html.endswith(
        '<p class="md-truncated">(Truncated: showing the first 400,000 of 500,000 characters.)</p>'
    )


ENHANCE_AND_CLICK = """async clipboard => {
    const out = document.getElementById('out');
    out.innerHTML = window.qwebMarkdown.render(
        '```python\\nprint(1)\\n```\\n\\ntext\\n\\n    indented\\n');
    window.qwebMarkdown.enhance(out);
    window.qwebMarkdown.enhance(out);
    const written = [];
    if (clipboard) {
        Object.defineProperty(navigator, 'clipboard', {
            value: { writeText: async text => { written.push(text); } },
        });
    } else {
        Object.defineProperty(navigator, 'clipboard', { value: undefined });
        document.addEventListener('copy', event => written.push(event.target.value));
    }
    const buttons = [...out.querySelectorAll('pre > button.md-copy')];
    buttons[0].click();
    await new Promise(resolve => setTimeout(resolve, 50));
    return { buttons: buttons.length, labels: buttons.map(b => b.textContent), written };
}"""


def test_enhance_adds_one_copy_button_per_code_block_that_copies_the_code(page):
    copied = page.evaluate(ENHANCE_AND_CLICK, True)

    assert copied["buttons"] == 2
    assert copied["labels"] == ["Copied", "Copy"]
    assert copied["written"] == ["print(1)\n"]


def test_the_copy_button_works_without_the_clipboard_api(page):
    copied = page.evaluate(ENHANCE_AND_CLICK, False)

    assert copied["labels"] == ["Copied", "Copy"]
    assert copied["written"] == ["print(1)\n"]
