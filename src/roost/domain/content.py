"""Post text: Mastodon's character counting, and rendering to safe HTML with links,
@mentions and #hashtags."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import nh3

MAX_TAG = 100  # longer "hashtags" stay plain text
URL_LENGTH = 23  # Mastodon counts every link as 23 characters, whatever its length.

_URL = r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
_MENTION = (r"(?<![\w/\\@])@(?P<uname>[a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_])?)"
            r"(?:@(?P<udomain>[\w.-]+\w))?")
_HASHTAG = r"(?<![\w/&#)])#(?P<tagname>\w{0,100}[^\W\d]\w{0,100})"
_TOKENS = re.compile(f"(?P<url>{_URL})|(?P<mention>{_MENTION})|(?P<tag>{_HASHTAG})",
                     re.IGNORECASE | re.UNICODE)
_USERNAME_PART = re.compile(r"^[a-z0-9_]+$", re.IGNORECASE)
_TAG_NAME = re.compile(r"\w{0,100}[^\W\d]\w{0,100}")


def is_tag_name(name: str) -> bool:
    """Whether ``name`` (without its ``#``) is one a post's hashtag can have."""
    return _TAG_NAME.fullmatch(name) is not None

_ALLOWED_TAGS = {"p", "br", "a", "span"}
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "rel", "class", "target", "translate"},
    "span": {"class", "translate"},
}


@dataclass(frozen=True)
class ParsedText:
    mentions: list[str]  # usernames (local part) in order of appearance, unique
    hashtags: list[str]  # as written, unique case-insensitively
    urls: list[str]


def parse(text: str, local_domain: str = "") -> ParsedText:
    """Links, hashtags, and mentions of local accounts (``@name`` or ``@name@<local_domain>``)."""
    mentions: list[str] = []
    hashtags: list[str] = []
    urls: list[str] = []
    for match in _TOKENS.finditer(text):
        if match.group("url"):
            urls.append(match.group("url"))
        elif match.group("mention"):
            name, domain = match.group("uname"), match.group("udomain")
            if domain is not None and domain.lower() != local_domain.lower():
                continue
            if _USERNAME_PART.match(name) and name.lower() not in [m.lower() for m in mentions]:
                mentions.append(name)
        elif match.group("tag"):
            tag = match.group("tagname")
            if len(tag) <= MAX_TAG and tag.lower() not in [t.lower() for t in hashtags]:
                hashtags.append(tag)
    return ParsedText(mentions, hashtags, urls)


def count_characters(text: str) -> int:
    """Length as Mastodon counts it: links count 23, ``@user@domain`` counts as ``@user``."""
    length = len(text)
    for match in _TOKENS.finditer(text):
        if match.group("url"):
            length += URL_LENGTH - len(match.group("url"))
        elif match.group("mention") and match.group("udomain"):
            length -= len(match.group("udomain")) + 1
    return length


def _link(url: str, text_html: str, rel: str = "nofollow noopener noreferrer") -> str:
    return (f'<a href="{html.escape(url)}" target="_blank" rel="{rel}" translate="no">'
            f"{text_html}</a>")


def _display_url(url: str) -> str:
    shown = re.sub(r"^https?://(www\.)?", "", url)
    return html.escape(shown if len(shown) <= 30 else shown[:30] + "…")


def render(
    text: str,
    *,
    profile_url: Callable[[str], str | None],
    tag_url: Callable[[str], str],
    local_domain: str = "",
) -> str:
    """Plain text to Mastodon-style HTML. ``profile_url(username)`` gives the profile link of a
    local account, or None when there is no such account (the mention stays plain text)."""
    paragraphs = [p for p in re.split(r"\n{2,}", text.strip()) if p.strip()]
    rendered = []
    for paragraph in paragraphs:
        out: list[str] = []
        position = 0
        for match in _TOKENS.finditer(paragraph):
            out.append(html.escape(paragraph[position:match.start()]))
            position = match.end()
            if match.group("url"):
                out.append(_link(match.group("url"), _display_url(match.group("url"))))
            elif match.group("mention"):
                username, domain = match.group("uname"), match.group("udomain")
                is_local = domain is None or domain.lower() == local_domain.lower()
                url = profile_url(username) if is_local else None
                if url is None:
                    out.append(html.escape(match.group(0)))
                else:
                    out.append(
                        f'<span class="h-card" translate="no"><a href="{html.escape(url)}" '
                        f'class="u-url mention">@<span>{html.escape(username)}</span></a></span>'
                    )
            elif len(match.group("tagname")) > MAX_TAG:
                out.append(html.escape(match.group(0)))
            else:
                tag = match.group("tagname")
                out.append(
                    f'<a href="{html.escape(tag_url(tag))}" class="mention hashtag" rel="tag">'
                    f"#<span>{html.escape(tag)}</span></a>"
                )
        out.append(html.escape(paragraph[position:]))
        rendered.append("<p>" + "".join(out).replace("\n", "<br />") + "</p>")
    return sanitize("".join(rendered))


def render_field_value(value: str) -> str:
    """A profile field's value: a link when it is a URL (the website link), else plain text."""
    stripped = value.strip()
    if re.fullmatch(_URL, stripped, re.IGNORECASE):
        link = _link(stripped, _display_url(stripped), rel="me nofollow noopener noreferrer")
        return sanitize(link)
    return html.escape(value)


def sanitize(markup: str) -> str:
    """The last line of defence: whatever we generated, only these tags and attributes pass."""
    return nh3.clean(
        markup,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        link_rel=None,
    )


def profile_url_lookup(known: Mapping[str, str]) -> Callable[[str], str | None]:
    """A ``profile_url`` function from a lower-cased username → URL mapping."""
    return lambda username: known.get(username.lower())
