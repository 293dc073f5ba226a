"""The races pages (list, start, watch, delete), the profile's follower-history panel and the
account stats page, without JavaScript."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from roost.domain.models import Page
from roost.settings import Settings
from tests.web.pages.conftest import Visitor, settle
from tests.web.pages.test_security import _no_inline_code


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A first milestone at 1 follower, for the stats page."""
    return Settings(data_dir=tmp_path / "data", port=8000, sqlite_synchronous="NORMAL",
                    milestones="1,1000")


def _start(alice: Visitor, accounts: str, target: str = "") -> object:
    alice.page("/races")
    return alice.submit("/races", {"accounts": accounts, "target": target})


def test_start_a_race_and_watch_its_page(alice: Visitor, bob: Visitor,
                                         visitor: Callable[[], Visitor]) -> None:
    carol = visitor().sign_up("carol")
    response = _start(alice, "@alice, bob", "2")
    assert response.status_code == 303  # type: ignore[attr-defined]
    location = response.headers["location"]  # type: ignore[attr-defined]
    assert re.fullmatch(r"/races/\d+", location)

    carol.page("/@bob")
    assert carol.submit("/@bob/follow", {"back": "/@bob"}).status_code == 303
    settle(alice.roost)
    html = alice.page(location).text
    _no_inline_code(html)
    assert 'data-live="race"' in html and 'id="race-chart"' in html
    assert 'data-target="2"' in html and 'data-step="minute"' in html
    rows = re.findall(r'<tr data-account-id="\d+" data-username="(\w+)" data-followers="(\d+)"',
                      html)
    assert rows == [("bob", "1"), ("alice", "0")]
    assert re.search(r'data-field="gap">1<', html)
    assert "@bob took the lead" in html
    assert "Delete this race" in html and "won" not in html.split('id="race-winner"')[1][:80]

    # Bob reaches the target of 2: the winner banner and the milestone follower.
    alice.page("/@bob")
    alice.submit("/@bob/follow", {"back": "/@bob"})
    settle(alice.roost)
    html = bob.page(location).text
    assert "@bob won, reaching 2" in html
    assert 'data-field="follower"><a href="/@alice">@alice</a>' in html
    assert "Delete this race" not in html  # not bob's race

    listing = carol.page("/races").text
    assert f'href="{location}"' in listing and "@bob vs @alice" in listing
    assert "@bob 2, @alice 0" in listing and "Finished" in listing
    assert 'action="/races"' in listing  # carol is signed in: she may start one


def test_race_form_errors(alice: Visitor, bob: Visitor) -> None:
    for accounts, target, message in (
            ("alice", "", "Name at least two accounts."),
            ("alice nobody", "", "There is no account @nobody."),
            ("alice alice", "", "must not repeat an account"),
            ("alice bob", "lots", "The target must be a whole number"),
            ("alice bob", "0", "target must be a positive follower count")):
        response = _start(alice, accounts, target)
        assert response.status_code == 422, (accounts, target)  # type: ignore[attr-defined]
        text = response.text  # type: ignore[attr-defined]
        assert message in text, (accounts, target, text[:2000])
        assert 'aria-invalid="true"' in text and f'value="{accounts}"' in text
    assert _start(alice, "alice bob", "1,000").status_code == 303  # type: ignore[attr-defined]
    races = alice.roost.db.read_sync(lambda tx: alice.roost.stores.races.page(tx, Page(limit=5)))
    assert races[0].target == 1000


def test_races_need_sign_in_and_csrf(alice: Visitor, bob: Visitor,
                                     visitor: Callable[[], Visitor]) -> None:
    guest = visitor()
    listing = guest.page("/races").text
    assert 'action="/races"' not in listing and "No races yet." in listing
    response = guest.submit("/races", {"accounts": "alice bob"})
    assert response.status_code == 303 and "/auth/sign_in" in response.headers["location"]
    alice.page("/races")
    forged = alice.request("POST", "/races", data={"accounts": "alice bob",
                                                   "csrf_token": "wrong"})
    assert forged.status_code == 403
    location = _start(alice, "alice bob").headers["location"]  # type: ignore[attr-defined]
    assert 'data-target="1000000"' in guest.page(location).text
    race_id = location.rsplit("/", 1)[1]
    bob.page(location)
    assert bob.submit(f"/races/{race_id}/delete").status_code == 403
    assert alice.request("POST", f"/races/{race_id}/delete",
                         data={"csrf_token": "wrong"}).status_code == 403
    alice.page(location)
    assert alice.submit(f"/races/{race_id}/delete").headers["location"] == "/races"
    assert alice.get(location).status_code == 404
    assert alice.get("/races/123abc").status_code == 404
    assert alice.get("/races/99999999999999999999").status_code == 404
    assert alice.get("/races/9999999999999999999").status_code == 404


def test_profile_has_the_history_chart(alice: Visitor, visitor: Callable[[], Visitor]) -> None:
    html = visitor().page("/@alice").text
    _no_inline_code(html)
    assert 'id="history-chart"' in html and 'data-account-id="' in html
    for name in ("hour", "day", "week", "all"):
        assert f'data-range="{name}"' in html
    assert 'href="/@alice/stats"' in html
    assert '<script src="/static/chart.js" defer></script>' in html
    assert "function create(" in visitor().get("/static/chart.js").text


def test_account_stats_page(alice: Visitor, bob: Visitor, visitor: Callable[[], Visitor]) -> None:
    before = datetime.now(UTC) - timedelta(minutes=1)
    bob.page("/@alice")
    bob.submit("/@alice/follow", {"back": "/@alice"})
    settle(alice.roost)
    guest = visitor()
    html = guest.page("/@alice/stats").text
    _no_inline_code(html)
    assert 'type="datetime-local"' in html
    gains = html.split('id="gains"')[1].split("</table>")[0]
    assert re.search(r"15 minutes</th><td>1</td><td>0</td><td>\+1</td>", gains)
    assert "Velocity: <strong>4.0</strong>" in html
    assert "<strong>1</strong> followers on" in html and 'href="/@bob">@bob</a>' in html

    past = guest.page("/@alice/stats?at=" + before.strftime("%Y-%m-%dT%H:%M")).text
    assert re.search(r"had <strong>0</strong> followers at", past)
    now = guest.page("/@alice/stats?at=" + datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")).text
    assert re.search(r"had <strong>1</strong> follower at", now)
    future = guest.get("/@alice/stats?at=2999-01-01T00:00")
    assert future.status_code == 422 and "in the future" in future.text
    bad = guest.get("/@alice/stats?at=yesterday")
    assert bad.status_code == 422 and "ISO 8601" in bad.text
    assert guest.get("/@nobody/stats").status_code == 404
