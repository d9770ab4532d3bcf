"""``{% icon "name" %}``: a small inline SVG icon instead of an emoji or a rare glyph.

Debian's Chromium without an emoji font draws empty boxes for 📁 and friends, and glyphs
like ⎇ depend on the fonts installed; an inline SVG draws the same everywhere and needs no
request (and no style attribute, which the Content-Security-Policy refuses). Registered as a
template builtin (``qweb/settings.py``), so templates use it without ``{% load %}``.

An icon beside a text label is decorative (``aria-hidden``); ``label="…"`` makes it an image
with that name, for an icon that stands alone.
"""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# 24×24 outline paths (stroke, no fill), drawn in the surrounding text's colour.
ICONS: dict[str, str] = {
    "repository": (
        '<circle cx="6" cy="5" r="2.2"/><circle cx="6" cy="19" r="2.2"/>'
        '<circle cx="18" cy="7" r="2.2"/><path d="M6 7.2v9.6M18 9.2c0 5-6 3.5-11 7.6"/>'
    ),
    "folder": (
        '<path d="M3 6.5A1.5 1.5 0 0 1 4.5 5H9l2 2.5h8.5A1.5 1.5 0 0 1 21 9v9.5'
        'a1.5 1.5 0 0 1-1.5 1.5h-15A1.5 1.5 0 0 1 3 18.5z"/>'
    ),
    "file": (
        '<path d="M6 3h8l5 5v12a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1z"/>'
        '<path d="M14 3v5h5"/>'
    ),
    "symlink": '<path d="M4 19v-5a5 5 0 0 1 5-5h11"/><path d="M15 4l5 5-5 5"/>',
    "submodule": (
        '<path d="M12 3l8 4.5v9L12 21l-8-4.5v-9z"/><path d="M4 7.5l8 4.5 8-4.5M12 12v9"/>'
    ),
    "warning": (
        '<path d="M12 3.5L2.5 20h19z"/><path d="M12 10v4.5"/><circle cx="12" cy="17.3" r=".6"/>'
    ),
    "home": '<path d="M3 11l9-7 9 7"/><path d="M5.5 9.5V20h13V9.5"/><path d="M10 20v-5h4v5"/>',
    "empty": '<circle cx="12" cy="12" r="8.5"/><path d="M8.5 12h7"/>',
    "forbidden": '<circle cx="12" cy="12" r="8.5"/><path d="M6 6l12 12"/>',
    "search": '<circle cx="10.5" cy="10.5" r="6"/><path d="M15 15l5.5 5.5"/>',
    "refactor": '<path d="M4 8h14M14 4l4 4-4 4"/><path d="M20 16H6M10 12l-4 4 4 4"/>',
    "chat": (
        '<path d="M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6'
        'a2 2 0 0 1 2-2z"/>'
    ),
    "menu": '<path d="M4 6.5h16M4 12h16M4 17.5h16"/>',
    "check": '<path d="M5 12.5l4.5 4.5L19 7.5"/>',
    "close": '<path d="M6 6l12 12M18 6L6 18"/>',
    "edit": '<path d="M4 20h4L19 9l-4-4L4 16v4z"/><path d="M13.5 6.5l4 4"/>',
}


@register.simple_tag
def icon(name: str, label: str = "", size: int = 16, css: str = "") -> SafeString:
    """The icon ``name`` as inline SVG; ``label`` names it for assistive technology."""
    try:
        paths = ICONS[name]
    except KeyError:
        raise template.TemplateSyntaxError(f"No icon named {name!r}.") from None
    if label:
        role = format_html('role="img" aria-label="{}"', label)
    else:
        role = mark_safe('aria-hidden="true"')
    return format_html(
        '<svg class="icon{}" viewBox="0 0 24 24" width="{}" height="{}" {} focusable="false"'
        ' fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round"'
        ' stroke-linejoin="round">{}</svg>',
        f" {css}" if css else "",
        size,
        size,
        role,
        mark_safe(paths),  # noqa: S308 - constant markup from ICONS above
    )
