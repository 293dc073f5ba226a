"""The web interface in a real browser: Debian's chromium driven by Playwright, against a real
`roost serve`.

Never a downloaded browser: chromium is the system's (/usr/bin/chromium, installed by
scripts/test). Where it is missing the tests skip, except in CI (CI=true), where they fail.
Set ROOST_SCREENSHOTS_DIR=docs/screenshots to refresh the screenshots in the docs.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.domain.content import count_characters
from tests.e2e.conftest import Server
from tests.services import unusable

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
COUNTER_JS = Path(__file__).parents[2] / "src" / "roost" / "web" / "static" / "counter.js"
PASSWORD = "correct horse battery"
TIMEOUT = 15_000  # ms: fan-out and live delivery are asynchronous


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unusable(f"{CHROMIUM} is not installed (scripts/test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unusable("Playwright for Python is not installed (scripts/test installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Tab:
    """One person's browser window: a page that records console errors (CSP violations
    among them) and knows the server."""

    def __init__(self, chromium: Any, server: Server, width: int = 1000,
                 height: int = 900, javascript: bool = True) -> None:
        self.context = chromium.new_context(viewport={"width": width, "height": height},
                                            java_script_enabled=javascript)
        self.context.set_default_timeout(TIMEOUT)
        self.page = self.context.new_page()
        self.server = server
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error"
                     else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> Any:
        self.page.goto(self.server.url + path)
        return self.page

    def sign_up(self, username: str) -> None:
        page = self.go("/auth/sign_up")
        page.get_by_label("Username").fill(username)
        page.get_by_label("E-mail").fill(f"{username}@example.com")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Password again").fill(PASSWORD)
        page.get_by_label("I agree to the rules of this server").check()
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_url(self.server.url + "/")
        assert page.get_by_role("button", name="Log out").is_visible()

    def wait_live(self) -> None:
        """Until the page's streaming WebSocket is open."""
        self.page.wait_for_selector("body[data-stream-state='open']", state="attached")

    def close(self) -> None:
        assert not [e for e in self.errors if "Content Security Policy" in e], self.errors
        self.context.close()


def _shoot(page: Any, name: str) -> None:
    folder = os.environ.get("ROOST_SCREENSHOTS_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


def test_counter_counts_as_the_server(chromium: Any) -> None:
    """counter.js against content.count_characters: tricky text, then random text."""
    page = chromium.new_page()
    page.set_content("<!doctype html><meta charset='utf-8'><p>counter</p>")
    page.add_script_tag(path=str(COUNTER_JS))
    tricky = [
        "", "hello", "a\nb", "héllo wörld", "👍🏽 family: 👨‍👩‍👧‍👦", "日本語のテキスト",
        "https://example.com", "see https://example.com/a/very/long/path?query=1&x=2.",
        "(https://example.com/x)", "http://a.b", "HTTP://EXAMPLE.COM/UP", "http\u017f://x.y/z",
        "ftp://example.com", "https://", "two https://a.example https://b.example/long/path",
        "@alice", "@alice@example.com", "@alice@example.com.", "hi @bob@sub.example.org!",
        "email me@example.com", "@al.ice@example.com", "@a-b@x.y", "x@alice@example.com",
        "@\u017fomeone@example.com", "@İstanbul@example.com", "@Kelvin@example.com",
        "@\u212aelvin@example.com", "#tag", "#123", "#tag_1 #\uff54\uff41\uff47", "a#b", "&#39;",
        "#" + "a" * 150,
        "@bob@ex\u00e4mple.com", "text\u00a0https://example.com\u3000after", "\u0085@a@b.c",
        "\u2028https://x.org\u2029", "\u200bhttps://zero.width/\u200b", "\ufeff@a@b.c",
        "\u2170#\u216b \u00b2#\u00b2 #\u0663 #a\u0663", "https://例え.jp/パス", "@user@例え.jp",
        "l\u0301@bob@x.com",
        "https://x.com/a)b", "https://x.com/a]", "[https://x.com/a]", "<https://x.com/>",
        "https://x.com/'quoted'", "@bob@x.com@y.com", "@_@_.__", "#_", "##tag", "/@a@b.c",
    ]
    alphabet = ("abcXYZ019 _.-@#/:?&!()[]{}<>'\"`\n\t\u00a0\u3000\u017f\u0130\u0131\u212a"
                "\u00e9\u00fc\u65e5\u672c\U0001f44d\U0001f3fd\u0663\u00b2\u216b\u0301"
                "httpswww.com")
    rng = random.Random(5)
    generated = []
    for _ in range(400):
        size = rng.randint(0, 60)
        pieces = [rng.choice(["https://", "http://", "@", "#", "@x@", ".com", "example"])
                  if rng.random() < 0.2 else rng.choice(alphabet) for _ in range(size)]
        generated.append("".join(pieces))
    texts = tricky + generated
    counted = page.evaluate("texts => texts.map(t => RoostCount.countCharacters(t))", texts)
    wrong = [(t, js, count_characters(t)) for t, js in zip(texts, counted, strict=True)
             if js != count_characters(t)]
    assert not wrong, wrong[:10]
    page.close()


def test_counter_character_classes_match_python(chromium: Any) -> None:
    """The JavaScript classes standing for Python's \\w, \\s, [^\\W\\d] and the
    case-insensitive [a-z0-9_] match the same characters, over every code point Python
    knows (characters newer than Python's Unicode tables are left out)."""
    import sys
    import unicodedata

    page = chromium.new_page()
    page.set_content("<!doctype html><meta charset='utf-8'><p>classes</p>")
    classes = {
        r"\w": (r"[\p{L}\p{N}_]", re.compile(r"\w")),
        r"[^\W\d]": (r"[\p{L}\p{Nl}\p{No}_]", re.compile(r"[^\W\d]")),
        r"\s": (r"[\t\n\v\f\r \x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f"
                r"\u3000]", re.compile(r"\s")),
        "[a-z0-9_]/i": (r"[a-zA-Z0-9_\u0130\u0131\u017f\u212a]",
                        re.compile(r"[a-z0-9_]", re.IGNORECASE)),
    }
    for name, (js_class, python) in classes.items():
        js_matches = set(page.evaluate("""cls => {
            const re = new RegExp('^' + cls + '$', 'u'); const out = [];
            for (let cp = 0; cp <= 0x10ffff; cp++) {
                if (cp >= 0xd800 && cp <= 0xdfff) continue;
                if (re.test(String.fromCodePoint(cp))) out.push(cp);
            }
            return out; }""", js_class))
        known = [cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF
                 and unicodedata.category(chr(cp)) != "Cn"]
        py_matches = {cp for cp in known if python.fullmatch(chr(cp))}
        differ = sorted(cp for cp in known if (cp in js_matches) != (cp in py_matches))
        assert not differ, (name, [hex(cp) for cp in differ[:20]])
    page.close()


def test_counter_script_matches_content_py() -> None:
    """counter.js spells out content.py's pattern; a change to one must reach the other."""
    from roost.domain import content

    script = COUNTER_JS.read_text()
    assert content.URL_LENGTH == 23 and "var URL_LENGTH = 23;" in script
    assert content.MAX_TAG == 100 and "{0,100}" in script
    assert content._URL == r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]}]"
    assert content._MENTION == (r"(?<![\w/\\@])@(?P<uname>[a-z0-9_]+(?:[a-z0-9_.-]+[a-z0-9_])?)"
                                r"(?:@(?P<udomain>[\w.-]+\w))?")
    assert content._HASHTAG == r"(?<![\w/&#)])#(?P<tagname>\w{0,100}[^\W\d]\w{0,100})"


def test_the_web_interface_end_to_end(chromium: Any, server: Server) -> None:
    """Sign up, set the website link, post with the counter, follow someone and see their
    post arrive live, reply, favourite, get notifications live, log out."""
    alice = Tab(chromium, server)
    bob = Tab(chromium, server)
    alice.sign_up("alice")
    bob.sign_up("bob")

    # The profile's website link, and the profile showing it.
    page = alice.go("/settings/profile")
    page.get_by_label("Display name").fill("Alice Example")
    page.get_by_label("Bio").fill("Gardener, baker, and #roost tester.")
    page.get_by_label("Website").fill("https://alice.example/")
    page.get_by_label("Label 1").fill("Pronouns")
    page.get_by_label("Content 1").fill("she/her")
    page.get_by_role("button", name="Save profile").click()
    assert page.get_by_text("Your profile is saved.").is_visible()
    page = alice.go("/@alice")
    link = page.locator("dl.fields a[href='https://alice.example/']")
    assert link.count() == 1
    assert {"me", "nofollow", "noopener"} <= set((link.get_attribute("rel") or "").split())
    assert page.get_by_role("heading", name="Alice Example").is_visible()

    # Post, watching the counter count as the server does.
    page = alice.go("/")
    box = page.get_by_label("What's on your mind?")
    text = "Hello Roost! My garden: https://alice.example/garden/" + "x" * 60 + " #gardening"
    box.fill(text)
    counter = page.locator("#compose-counter")
    assert counter.text_content() == f"{500 - count_characters(text)} characters left"
    assert count_characters(text) < len(text)  # the link counted 23
    box.fill("y" * 501)
    assert counter.text_content() == "1 character too many"
    assert page.get_by_role("button", name="Post").is_disabled()
    box.fill(text)
    page.get_by_role("button", name="Post").click()
    page.wait_for_url(server.url + "/")
    assert page.locator("#timeline article").first.get_by_text("Hello Roost!").is_visible()

    # Bob watches his own profile: his followers count follows Alice's follow, live.
    bob_page = bob.go("/@bob")
    bob.wait_live()
    assert bob_page.locator("#followers-count").text_content() == "0"
    page = alice.go("/@bob")
    page.get_by_role("button", name="Follow", exact=True).click()
    page.wait_for_url(server.url + "/@bob")
    assert page.get_by_role("button", name="Unfollow").is_visible()
    bob_page.wait_for_function(
        "document.getElementById('followers-count').textContent === '1'")

    # Alice's home is open; Bob posts; "1 new post" appears without a reload; reveal it.
    page = alice.go("/")
    alice.wait_live()
    page.evaluate("window.stillTheSamePage = true")
    bob_page = bob.go("/")
    bob_page.get_by_label("What's on your mind?").fill("Fresh bread from the oven, anyone?")
    bob_page.get_by_role("button", name="Post").click()
    bob_page.wait_for_url(server.url + "/")
    button = page.get_by_role("button", name="1 new post")
    button.wait_for(state="visible")
    assert page.locator("#timeline").get_by_text("Fresh bread").count() == 0
    button.click()
    arrived = page.locator("#timeline article").first
    arrived.get_by_text("Fresh bread from the oven").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True
    assert not button.is_visible()
    _shoot(page, "home")

    # Bob keeps his notifications open: what Alice does next reaches him live.
    bob_page = bob.go("/notifications")
    bob.wait_live()
    assert bob_page.get_by_text("followed you").is_visible()

    # Favourite in place, then reply.
    favourite = arrived.get_by_role("button", name="Favourite")
    favourite.click()
    page.locator("#timeline article").first.locator(
        "button[aria-pressed='true']", has_text="Favourite").wait_for()
    assert page.evaluate("window.stillTheSamePage") is True
    page.locator("#timeline article").first.get_by_role("link", name="Reply").click()
    page.wait_for_url(re.compile(r".*/@bob/\d+#reply$"))
    reply_box = page.get_by_label("Reply to bob")
    assert reply_box.input_value() == "@bob "
    reply_box.fill("@bob Yes please! Save me a slice.")
    page.get_by_role("button", name="Reply", exact=True).click()
    page.wait_for_url(re.compile(r".*/@bob/\d+$"))
    thread = page.locator(".thread")
    thread.get_by_text("Save me a slice").wait_for()
    assert thread.get_by_text("Fresh bread from the oven").is_visible()
    _shoot(page, "post")

    notes = bob_page.locator("#notifications")
    notes.get_by_text("favourited your post").wait_for()
    notes.get_by_text("mentioned you").wait_for()
    assert bob_page.locator("#notifications-empty").count() == 0

    page = alice.go("/@alice")
    _shoot(page, "profile")
    phone = Tab(chromium, server, width=390, height=844)
    phone_page = phone.go("/@alice")
    assert phone_page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    _shoot(phone_page, "profile-phone")
    phone.close()

    # Log out.
    page = alice.go("/")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(server.url + "/")
    assert page.get_by_role("link", name="Sign in").first.is_visible()
    assert alice.go("/notifications").url.startswith(server.url + "/auth/sign_in")
    alice.close()
    bob.close()


def test_pages_work_without_javascript(chromium: Any, server: Server) -> None:
    """Sign up, post, follow, favourite and log out with JavaScript off: plain forms."""
    carol = Tab(chromium, server, javascript=False)
    carol.sign_up("carol")
    page = carol.go("/")
    page.get_by_label("What's on your mind?").fill("Posted without JavaScript")
    page.get_by_role("button", name="Post").click()
    article = page.locator("#timeline article").first
    article.get_by_text("Posted without JavaScript").wait_for()
    article.get_by_role("button", name="Favourite").click()
    page.wait_for_url(server.url + "/")
    assert page.locator("#timeline article").first.locator(
        "button[aria-pressed='true']").count() == 1
    assert page.locator("#new-items-button").is_hidden()
    page.get_by_role("button", name="Log out").click()
    assert page.get_by_role("link", name="Sign in").first.is_visible()
    carol.close()


def test_keyboard_reaches_the_compose_box_and_nav(chromium: Any, server: Server) -> None:
    """The skip link comes first; the nav, then the compose box follow in order."""
    dave = Tab(chromium, server)
    dave.sign_up("dave")
    page = dave.go("/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || "
                                   "document.activeElement.textContent.trim()"))
    assert order[0] == "compose-text", order
    dave.close()


def _api_accounts(server: Server, usernames: list[str]) -> dict[str, tuple[str, str]]:
    """Accounts made through the API: username -> (id, user token)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        app = client.post("/api/v1/apps", data={
            "client_name": "browser-test", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob",
            "scopes": "read write follow"}).json()
        app_token = client.post("/oauth/token", data={
            "grant_type": "client_credentials", "client_id": app["client_id"],
            "client_secret": app["client_secret"], "scope": "read write follow",
        }).json()["access_token"]
        found = {}
        for username in usernames:
            created = client.post("/api/v1/accounts", headers={
                "Authorization": f"Bearer {app_token}"}, data={
                "username": username, "email": f"{username}@example.com",
                "password": PASSWORD, "agreement": "true"})
            assert created.status_code == 200, created.text
            token = created.json()["access_token"]
            me = client.get("/api/v1/accounts/verify_credentials",
                            headers={"Authorization": f"Bearer {token}"}).json()
            found[username] = (str(me["id"]), token)
        return found


def test_a_race_updates_live_as_follows_arrive(chromium: Any, server: Server) -> None:
    """Start a race and see its chart and standings update as follows arrive (through the
    API, while the page is open), without a reload."""
    from playwright.sync_api import expect  # importable: the chromium fixture checked
    accounts = _api_accounts(server, ["frank", "gus", "hal"])
    erin = Tab(chromium, server)
    erin.sign_up("erin")
    page = erin.go("/races")
    page.get_by_label("Accounts").fill("frank, gus")
    page.get_by_label("Target (followers)").fill("2")
    page.get_by_role("button", name="Start the race").click()
    page.wait_for_url(re.compile(r".*/races/\d+$"))
    erin.wait_live()
    page.wait_for_selector("#race-chart[data-loaded='true']", state="attached")
    page.evaluate("window.stillTheSamePage = true")
    frank_id, gus_id = accounts["frank"][0], accounts["gus"][0]
    line = f"#race-chart polyline[data-series='{gus_id}']"
    before = int(page.locator(line).get_attribute("data-points") or "0")
    assert before >= 2
    assert page.locator(f"#race-chart polyline[data-series='{frank_id}']").count() == 1
    assert page.locator("#race-chart .chart-target").count() == 1  # target 2 is in range
    followers = f"#standings tr[data-account-id='{gus_id}'] [data-field='followers']"
    assert page.locator(followers).text_content() == "0"

    # Hal follows Gus (through the API): Gus takes the lead from Frank (first on a tie).
    httpx.post(f"{server.url}/api/v1/accounts/{gus_id}/follow",
               headers={"Authorization": f"Bearer {accounts['hal'][1]}"}).raise_for_status()
    expect(page.locator(followers)).to_have_text("1")
    gap = f"#standings tr[data-account-id='{frank_id}'] [data-field='gap']"
    assert page.locator(gap).text_content() == "1"
    assert page.locator("#standings tbody tr").first.get_attribute("data-account-id") == gus_id
    page.locator("#lead-changes").get_by_text("@gus took the lead").wait_for()
    assert int(page.locator(line).get_attribute("data-points") or "0") > before
    assert page.locator("#race-chart .chart-marker").count() == 1
    assert page.evaluate("window.stillTheSamePage") is True
    _shoot(page, "race")

    # Gus's profile: the follower-history chart, and its range buttons.
    page = erin.go("/@gus")
    page.wait_for_selector("#history-chart polyline", state="attached")
    page.get_by_role("button", name="Hour").click()
    expect(page.locator("#history-chart")).to_have_attribute("data-range", "hour")
    assert page.get_by_role("button", name="Hour").get_attribute("aria-pressed") == "true"
    assert int(page.locator("#history-chart polyline").get_attribute("data-points") or 0) > 2
    _shoot(page, "profile-history")
    page = erin.go("/@gus/stats")
    assert page.locator("#gains").get_by_text("+1").first.is_visible()
    _shoot(page, "account-stats")
    page = erin.go("/races")
    assert page.get_by_role("link", name="@gus vs @frank").is_visible()
    _shoot(page, "races")
    erin.close()
