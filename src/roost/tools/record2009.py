"""The recorded April 2009 race between @aplusk and @cnnbrk, as continuous follower curves.

The record (``roost/data/race-2009.csv``, with its sources) has a few reported counts per
account and, on the decisive night, who led and by how much. Ashton Kutcher's curve runs
through his reported counts; CNN's is his minus a gap curve that runs through every reported
gap: where both counts are known, where the lead changed (gap 0), where a margin was
reported, and where only CNN's count is known. So both curves pass through every reported
figure and the lead changes hands at the reported minutes.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

ACCOUNTS = ("aplusk", "cnnbrk")
_EVENT = re.compile(r"^(aplusk|cnnbrk) (takes the lead|retakes the lead|leads again|"
                    r"leads by (\d+)|reaches (\d+))$")


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


class Piecewise:
    """A piecewise-linear function through (time, value) points, flat beyond both ends."""

    def __init__(self, points: dict[int, float]) -> None:
        self.times = sorted(points)
        self.values = [points[t] for t in self.times]

    def __call__(self, t: int) -> float:
        i = bisect.bisect_right(self.times, t)
        if i == 0:
            return self.values[0]
        if i == len(self.times):
            return self.values[-1]
        t0, t1 = self.times[i - 1], self.times[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


@dataclass
class Record:
    start: int
    end: int
    aplusk: Piecewise
    gap: Piecewise  # aplusk minus cnnbrk
    leaders: list[tuple[int, str]]  # (time, who leads from then on), from the event reports
    crossings: list[tuple[int, str, int]]  # (time, account, count reached)

    def counts(self, t: int) -> tuple[float, float]:
        a = self.aplusk(t)
        return a, a - self.gap(t)

    def leader_at(self, t: int) -> str | None:
        """Who the reports say led at ``t`` (None before the first report of a lead)."""
        i = bisect.bisect_right([at for at, _ in self.leaders], t)
        return self.leaders[i - 1][1] if i else None


def load(text: str | None = None) -> Record:
    if text is None:
        text = resources.files("roost.data").joinpath("race-2009.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(
        "\n".join(line for line in text.splitlines() if not line.startswith("#")))))
    aplusk: dict[int, float] = {}
    cnn_only: dict[int, float] = {}
    gap: dict[int, float] = {}
    leaders: list[tuple[int, str]] = []
    crossings: list[tuple[int, str, int]] = []
    times = []
    for row in rows:
        t = _ms(row["time"])
        times.append(t)
        a, c = row["aplusk"].strip(), row["cnnbrk"].strip()
        if a:
            aplusk[t] = float(a)
        if a and c:
            gap[t] = float(a) - float(c)
        elif c:
            cnn_only[t] = float(c)
        event = _EVENT.match(row["event"].strip())
        if event:
            who, what = event.group(1), event.group(2)
            sign = 1 if who == "aplusk" else -1
            if what.startswith("leads by"):
                gap[t] = sign * float(event.group(3))
                leaders.append((t, who))
            elif what.startswith("reaches"):
                crossings.append((t, who, int(event.group(4))))
            else:
                gap[t] = 0.0
                leaders.append((t, who))
    curve = Piecewise(aplusk)
    for t, c in cnn_only.items():
        gap[t] = curve(t) - c
    return Record(min(times), max(times), curve, Piecewise(gap), sorted(leaders),
                  sorted(crossings))
