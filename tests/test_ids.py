"""Ids: time order, and the buckets that spread them."""

from __future__ import annotations

from collections import Counter

from roost.ids import IdGenerator, bucket_of, id_at_ms, ms_of_id


def test_ids_grow_with_time_and_keep_their_millisecond() -> None:
    generator = IdGenerator(node=5)
    first = generator.next_id(at_ms=1_000)
    second = generator.next_id(at_ms=1_000)
    later = generator.next_id(at_ms=1_001)
    assert first < second < later
    assert ms_of_id(first) == ms_of_id(second) == 1_000
    assert id_at_ms(1_000) <= first < id_at_ms(1_001) <= later


def test_buckets_spread_ids_made_a_millisecond_apart() -> None:
    """Ids of one node, each in its own millisecond, all end in the same low bits; their
    buckets still come out even."""
    generator = IdGenerator(node=3)
    made = [generator.next_id(at_ms=1_750_000_000_000 + n * 7) for n in range(1_600)]
    assert len({i % 16 for i in made}) == 1  # what the plain remainder would do
    per_bucket = Counter(bucket_of(i, 16) for i in made)
    assert sorted(per_bucket) == list(range(16))
    assert all(70 <= n <= 130 for n in per_bucket.values())


def test_buckets_are_in_range() -> None:
    for buckets in (1, 3, 16):
        for snowflake in (0, 1, 2**63 - 1, 123_456_789_012_345):
            assert 0 <= bucket_of(snowflake, buckets) < buckets
    assert bucket_of(12345, 1) == 0
