"""The processes tests start, and what a test does when a service or tool it needs is missing:
skip on a developer's machine, fail under CI (``CI=true``), where PostgreSQL, Redis and
chromium are always there and a skip would hide a broken environment."""

from __future__ import annotations

import os
import subprocess
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unusable(message: str) -> NoReturn:
    """Skip the test because ``message`` (fail it under CI)."""
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it has not exited 10 s later."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
