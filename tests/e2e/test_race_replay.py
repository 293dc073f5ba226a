"""The 2009 replay, end to end at high speed against a real server, scaled to a race to 1,000."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from tests.e2e.conftest import Server


@pytest.mark.timeout(240)
def test_replay_reports_the_recorded_outcome(server: Server) -> None:
    assert server.roost("create-user", "admin", "--email", "admin@example.com",
                        "--password", "long enough pw", "--admin").returncode == 0
    token = server.roost("token", "create", "admin", "--scopes",
                         "read write follow admin:write").stdout.strip()
    result = subprocess.run(
        [sys.executable, "-m", "roost", "race", "replay", "--url", server.url,
         "--token", token, "--speed", "20000", "--scale", "0.001", "--check"],
        capture_output=True, text=True, timeout=200)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "matches the 2009 record" in out
    assert out.index("@aplusk") < out.index("@cnnbrk")
    changes = [line.split(" at ")[1] for line in out.splitlines()
               if line.strip().startswith("lead change:")]
    recorded = ["16 Apr 21:38 EDT", "16 Apr 23:50 EDT", "17 Apr 00:25 EDT"]
    assert len(changes) == 3
    for seen, expected in zip(changes, recorded, strict=True):
        # One tick at this speed is 17 recorded minutes, and the machine is shared.
        delta = datetime.strptime(seen, "%d %b %H:%M EDT") - datetime.strptime(
            expected, "%d %b %H:%M EDT")
        assert abs(delta) < timedelta(hours=2), (seen, expected)
    assert server.roost("check").returncode == 0
