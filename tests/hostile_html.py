"""What "no text from a file became markup" means for a rendered page or email, shared by the
presentation tests and the property-based hostile-history test: the elements and attributes a
browser would build from the HTML, and the hostile strings they write into the files."""

from __future__ import annotations

from html.parser import HTMLParser

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = "\"><img src=x onerror=alert(1)>"
ATTRIBUTE = "' onmouseover='x"
LINK = "javascript:alert(1)"
SCRIPT_LINKS = ("javascript:", "data:text", "vbscript:")  # a link with one of these runs script


def hostile(field: str) -> str:
    """A string that is markup in every way it can be, tagged with the field it was written to."""
    return f"{LINK}//{field}{SCRIPT}{BREAKOUT}{ATTRIBUTE}"


class PageMarkup(HTMLParser):
    """The elements and attributes a browser would build from a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(name, value or "") for name, value in attrs]

    handle_startendtag = handle_starttag

    @classmethod
    def of(cls, page: str) -> PageMarkup:
        parsed = cls()
        parsed.feed(page)
        parsed.close()
        return parsed

    def event_handlers(self) -> list[str]:
        return [name for name, _ in self.attributes if name.startswith("on")]

    def script_links(self) -> list[str]:
        links = [value for name, value in self.attributes if name in ("href", "src", "action", "xlink:href")]
        return [v for v in links if v.strip().lower().startswith(SCRIPT_LINKS)]


def assert_no_markup_from_files(page: str) -> PageMarkup:
    """No script or injected image element, no event handler, no script link in ``page``."""
    parsed = PageMarkup.of(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags, sorted(set(parsed.tags))
    assert not parsed.event_handlers()
    assert not parsed.script_links()
    assert "<script" not in page.lower() and "<img" not in page.lower()
    return parsed
