"""The recorded 2009 race as curves: through every reported figure."""

from __future__ import annotations

import pytest

from roost.tools.record2009 import load


def test_record_curves_pass_through_the_reports() -> None:
    record = load()
    leaders = [who for _, who in record.leaders]
    assert leaders[0] == "aplusk" and leaders[-1] == "aplusk" and "cnnbrk" in leaders
    for at, who, count in record.crossings:
        a, c = record.counts(at)
        assert (a if who == "aplusk" else c) == pytest.approx(count)
    a, c = record.counts(record.end)
    assert (round(a), round(c)) == (1_026_651, 1_010_155)
