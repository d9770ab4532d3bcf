from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from qweb.lib import markdown
from qweb.lib.markdown import MAX_INPUT_CHARS, is_safe_link, render_markdown

# Markdown an injected model answer might contain. None of it may turn into markup that
# runs, loads or navigates; tests/e2e/test_markdown_js.py runs the same list in Chromium.
XSS_VECTORS = [
    "<script>alert(1)</script>",
    "before <script>alert(1)</script> after",
    "<img src=x onerror=alert(1)>",
    'inline <img src="x" onerror="alert(1)"> image',
    '<iframe src="https://evil.example"></iframe>',
    "<svg onload=alert(1)></svg>",
    '<a href="javascript:alert(1)">raw anchor</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](&#x6A;&#x61;vascript:alert(1))",
    "[click](javascript&colon;alert(1))",
    "[click](<javascript:alert(1)>)",
    "[click](  javascript:alert(1)  )",
    "[click](java%09script:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](DATA:text/html,<script>alert(1)</script>)",
    "[click](vbscript:msgbox(1))",
    "[click](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "[click][evil]\n\n[evil]: javascript:alert(1)\n",
    "![pic](javascript:alert(1))",
    "![pic](data:image/svg+xml,<svg onload=alert(1)>)",
    "![pic](https://tracker.example/pixel.png?leak=secret)",
    '```"><script>alert(1)</script>\ncode\n```',
    "```python\n</code></pre><script>alert(1)</script>\n```",
]

_SAFE_HREF = re.compile(r"^(https?:|mailto:|#|/|[^:/?#]*(?:[/?#]|$))", re.IGNORECASE)


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parsed_tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Markup()
    parser.feed(html)
    parser.close()
    return parser.tags


def assert_harmless(html: str) -> None:
    for tag, attrs in parsed_tags(html):
        assert tag not in {"script", "img", "iframe", "svg", "object", "embed", "style"}, html
        assert not [name for name in attrs if name.startswith("on")], html
        if "href" in attrs:
            assert _SAFE_HREF.match(attrs["href"] or ""), html
        assert "src" not in attrs, html


def links(html: str) -> list[dict[str, str | None]]:
    return [attrs for tag, attrs in parsed_tags(html) if tag == "a"]


def test_headings_lists_and_emphasis_render_as_html():
    html = render_markdown("# Title\n\n## Part\n\n- one\n- *two*\n\n1. **first**\n")

    assert "<h1>Title</h1>" in html
    assert "<h2>Part</h2>" in html
    assert "<ul>\n<li>one</li>\n<li><em>two</em></li>\n</ul>" in html
    assert "<ol>\n<li><strong>first</strong></li>\n</ol>" in html


def test_tables_render_with_their_column_alignment_as_classes_not_inline_styles():
    html = render_markdown("| name | kind | size |\n|:-----|:-:|-----:|\n| a.py | py | 12 |\n")

    assert "<table>" in html
    assert '<th class="md-align-left">name</th>' in html
    assert '<td class="md-align-center">py</td>' in html
    assert '<td class="md-align-right">12</td>' in html
    # The Content-Security-Policy refuses style attributes: the page would drop them.
    assert "style=" not in html


def test_table_cells_keep_no_class_but_the_alignment_ones():
    html = render_markdown("| a |\n|---|\n| b |\n")

    assert "<th>a</th>" in html
    assert "<td>b</td>" in html


def test_strikethrough_renders():
    assert "<p><s>old</s> new</p>" in render_markdown("~~old~~ new")


def test_a_python_fence_is_highlighted_with_pygments_classes():
    html = render_markdown("```python\ndef area(r):\n    return 3.14 * r  # pi\n```\n")

    assert html.startswith(
        '<pre class="highlight" data-language="python"><code class="language-python">'
    )
    # The sanitizer keeps the highlight spans that pygments.css colours.
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">area</span>' in html
    assert '<span class="c1"># pi</span>' in html
    assert html.endswith("</code></pre>\n")


def test_the_language_name_is_matched_without_case():
    html = render_markdown("```Python\nimport os\n```\n")

    assert 'data-language="python"' in html
    assert '<span class="kn">import</span>' in html


def test_an_unknown_language_is_shown_as_escaped_plain_code():
    html = render_markdown("```nosuchlanguage\nif a < b: <b>x</b>\n```\n")

    assert html == (
        '<pre class="highlight" data-language="nosuchlanguage">'
        '<code class="language-nosuchlanguage">if a &lt; b: &lt;b&gt;x&lt;/b&gt;\n</code></pre>\n'
    )


def test_a_fence_without_a_language_is_not_guessed():
    html = render_markdown("```\ndef area(r):\n    return r\n```\n")

    assert html == (
        '<pre class="highlight" data-language="text"><code>'
        "def area(r):\n    return r\n</code></pre>\n"
    )


def test_an_indented_code_block_has_the_same_shape_as_a_plain_fence():
    html = render_markdown("para\n\n    x = <1>\n")

    assert '<pre class="highlight" data-language="text"><code>x = &lt;1&gt;\n</code></pre>' in html


def test_an_info_string_that_is_not_a_language_name_stays_out_of_the_attributes():
    html = render_markdown('```"><script>alert(1)</script>\ncode\n```\n')

    assert html == '<pre class="highlight" data-language="text"><code>code\n</code></pre>\n'


def test_an_unclosed_fence_renders_the_code_that_has_arrived():
    html = render_markdown("Here:\n\n```python\nprint(1)\n")

    assert '<pre class="highlight" data-language="python">' in html
    assert '<span class="nb">print</span>' in html


def test_a_huge_code_block_is_shown_without_highlighting():
    code = "x = 1\n" * (markdown.MAX_HIGHLIGHT_CHARS // 6 + 1)

    html = render_markdown(f"```python\n{code}```\n")

    assert "<span" not in html
    assert html.count("x = 1\n") == code.count("\n")


@pytest.mark.parametrize("source", XSS_VECTORS)
def test_untrusted_markup_renders_as_harmless_text(source):
    assert_harmless(render_markdown(source))


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<iframe src="https://evil.example"></iframe>',
    ],
)
def test_raw_html_is_shown_as_escaped_text(source):
    html = render_markdown(source)

    escaped = source.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert html == f"<p>{escaped}</p>\n"


@pytest.mark.parametrize(
    "source",
    [vector for vector in XSS_VECTORS if vector.startswith(("[click]", "<javascript"))],
)
def test_a_link_to_anything_but_http_mailto_or_a_relative_url_is_not_a_link(source):
    assert links(render_markdown(source)) == []


def test_http_links_open_in_a_new_tab_without_referrer_or_ranking():
    html = render_markdown('[docs](https://docs.example/a?b=1&c=2 "The docs") <http://x.example>')

    assert links(html) == [
        {
            "href": "https://docs.example/a?b=1&c=2",
            "title": "The docs",
            "rel": "nofollow noopener noreferrer",
            "target": "_blank",
        },
        {"href": "http://x.example", "rel": "nofollow noopener noreferrer", "target": "_blank"},
    ]


def test_mailto_and_relative_links_are_links():
    html = render_markdown("[mail](mailto:ada@example.com) [file](/w/acme/repos/1) [up](../x)")

    assert [attrs["href"] for attrs in links(html)] == [
        "mailto:ada@example.com",
        "/w/acme/repos/1",
        "../x",
    ]


def test_fragment_links_stay_in_the_page():
    assert links(render_markdown("[see below](#usage)")) == [{"href": "#usage"}]


def test_an_image_becomes_a_link_to_it_and_is_never_loaded():
    html = render_markdown("![diagram *v2*](https://img.example/d.png)")

    assert "<img" not in html
    assert html == (
        '<p><a href="https://img.example/d.png" class="md-image-link" '
        'rel="nofollow noopener noreferrer" target="_blank">🖼 diagram v2</a></p>\n'
    )


def test_an_image_without_alt_text_is_labelled_image():
    assert ">🖼 image</a>" in render_markdown("![](http://img.example/a.png)")


def test_an_image_with_a_relative_or_mailto_url_shows_only_its_alt_text():
    assert render_markdown("![chart](/static/c.png) ![m](mailto:a@b.example)") == (
        "<p>chart m</p>\n"
    )


def test_an_image_with_a_script_url_stays_as_its_markdown_text():
    assert render_markdown("![pic](javascript:alert(1))") == "<p>![pic](javascript:alert(1))</p>\n"


def test_the_sanitizer_removes_what_a_renderer_bug_would_let_through(monkeypatch):
    class LeakyRenderer:
        def render(self, text: str) -> str:
            return (
                '<p onclick="x()">hi<script>alert(1)</script><img src=x onerror=y()>'
                '<a href="javascript:alert(1)" rel="nofollow noopener noreferrer">a</a></p>'
                '<pre class="highlight" data-language="py" style="x"><code><span class="k">'
                "def</span></code></pre>"
            )

    monkeypatch.setattr(markdown, "_MARKDOWN", LeakyRenderer())

    assert render_markdown("anything") == (
        '<p>hi<a rel="nofollow noopener noreferrer">a</a></p>'
        '<pre class="highlight" data-language="py"><code><span class="k">def</span></code></pre>'
    )


def test_a_huge_answer_is_truncated_with_a_visible_note():
    html = render_markdown("word " * 100_000)  # 500,000 characters

    assert html.endswith(
        '<p class="md-truncated">(Truncated: showing the first 400,000 of 500,000 characters.)</p>'
    )
    assert html.count("word") == MAX_INPUT_CHARS // 5


def test_an_answer_at_the_limit_is_not_truncated():
    html = render_markdown("a" * MAX_INPUT_CHARS)

    assert "md-truncated" not in html
    assert html.count("a") == MAX_INPUT_CHARS


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://example.com", True),
        ("HTTP://EXAMPLE.COM", True),
        ("mailto:a@example.com", True),
        ("/relative/path", True),
        ("relative/file.py", True),
        ("#anchor", True),
        ("?q=1", True),
        ("javascript:alert(1)", False),
        ("JAVASCRIPT:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java%09script:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
        ("file:///etc/passwd", False),
        ("ftp://example.com", False),
    ],
)
def test_only_http_mailto_and_relative_links_are_safe(url, safe):
    assert is_safe_link(url) is safe
