"""Post text: parsing, Mastodon's character count, safe HTML."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from roost.domain import content


def _render(text: str, known: tuple[str, ...] = ("alice",)) -> str:
    return content.render(
        text,
        profile_url=lambda u: f"https://r.example/@{u}" if u.lower() in known else None,
        tag_url=lambda t: f"https://r.example/tags/{t}",
        local_domain="r.example",
    )


def test_parse_finds_local_mentions_tags_and_links() -> None:
    parsed = content.parse("@alice @Bob@r.example @carol@elsewhere.org #One #one #2 "
                           "https://x.example/a. mail@example.com", "r.example")
    assert parsed.mentions == ["alice", "Bob"]
    assert parsed.hashtags == ["One"]
    assert parsed.urls == ["https://x.example/a"]


@pytest.mark.parametrize(("text", "length"), [
    ("hello", 5),
    ("https://example.com/" + "a" * 100, 23),
    ("see http://x.y", 4 + 23),
    ("@alice@remote.example hi", len("@alice hi")),
    ("😀", 1),
])
def test_count_characters_like_mastodon(text: str, length: int) -> None:
    assert content.count_characters(text) == length


def test_render_escapes_and_links() -> None:
    html = _render("<b>x</b> & @alice @nobody #Tag https://e.example/path\nline\n\npara")
    assert "&lt;b&gt;x&lt;/b&gt; &amp;" in html
    mention = '<a href="https://r.example/@alice" class="u-url mention">@<span>alice</span></a>'
    assert mention in html
    assert "@nobody" in html and "@nobody</a>" not in html
    assert 'href="https://r.example/tags/Tag"' in html
    assert 'href="https://e.example/path"' in html and 'rel="nofollow noopener noreferrer"' in html
    assert html.count("<p>") == 2 and "<br>" in html


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, [name for name, _ in attrs]))


def test_render_cannot_be_tricked_into_markup() -> None:
    html = _render('https://e.example/"onmouseover="alert(1) <img src=x onerror=alert(1)> '
                   "javascript:alert(1) #<script>")
    parser = _Tags()
    parser.feed(html)
    allowed = {"p": set(), "br": set(), "span": {"class", "translate"},
               "a": {"href", "rel", "class", "target", "translate"}}
    for tag, attributes in parser.seen:
        assert tag in allowed
        assert set(attributes) <= allowed[tag]
    assert 'href="javascript' not in html


def test_field_value_links_urls_only() -> None:
    link = content.render_field_value("https://alice.example")
    assert link.startswith('<a href="https://alice.example"')
    assert 'rel="me nofollow noopener noreferrer"' in link
    assert content.render_field_value("<i>she/her</i>") == "&lt;i&gt;she/her&lt;/i&gt;"
