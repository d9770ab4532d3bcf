"""Icons are inline SVG from ``{% icon %}``: never emoji or symbol glyphs a font may lack."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.template import Context, Template, TemplateSyntaxError

ROOT = Path(__file__).resolve().parents[1]
# Emoji and the symbol blocks pages once drew icons from (⎇ ⌂ ⌕ ⚠ ✓ ✗ 📁 📄 …): Debian's
# Chromium without an emoji font shows empty boxes for them.
GLYPHS = re.compile("[\u2300-\u23ff\u2600-\u27bf\u2b00-\u2bff\ufe0f\U0001f000-\U0001ffff]")


def _render(source: str, **context) -> str:
    return Template(source).render(Context(context))


def test_an_icon_beside_its_label_is_hidden_from_assistive_technology():
    html = _render('{% icon "folder" %}')

    assert html.startswith('<svg class="icon" viewBox="0 0 24 24"')
    assert 'aria-hidden="true"' in html and "role=" not in html
    assert 'stroke="currentColor"' in html and "style=" not in html


def test_an_icon_with_a_label_is_an_image_with_that_name_escaped():
    html = _render('{% icon "warning" label=name size=40 %}', name="Findings & more")

    assert 'role="img" aria-label="Findings &amp; more"' in html
    assert 'width="40" height="40"' in html and "aria-hidden" not in html


def test_an_unknown_icon_is_a_template_error():
    with pytest.raises(TemplateSyntaxError, match="No icon named 'nope'"):
        _render('{% icon "nope" %}')


@pytest.mark.parametrize(
    "path",
    sorted(
        [*ROOT.glob("templates/**/*.html"), *ROOT.glob("static/js/*.js")],
        key=str,
    ),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_no_page_or_script_draws_an_icon_with_a_glyph(path):
    found = [
        f"line {number}: {GLYPHS.findall(line)}"
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if GLYPHS.search(line)
    ]

    assert not found, f"{path.relative_to(ROOT)} uses glyphs as icons; use {{% icon %}}: {found}"
