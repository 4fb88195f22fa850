"""The texts people read: byte counts (one formatter for the server, doctor and models) and durations."""

from __future__ import annotations

import pytest

from bridge.display import format_bytes, format_duration


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 KB"),
        (1_500_000, "1.5 MB"),
        (5_210_000_000, "5.2 GB"),
        (4_000_000_000_000, "4000.0 GB"),  # GB is the largest unit
        (-2_000_000, "-2.0 MB"),  # a shrinking total reads as one
    ],
)
def test_decimal_sizes(n: float, expected: str) -> None:
    assert format_bytes(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"),
    [(1023, "1023 B"), (1024, "1.0 KiB"), (6 * 1024**3, "6.0 GiB"), (int(79.6 * 1024**3), "79.6 GiB")],
)
def test_binary_sizes(n: int, expected: str) -> None:
    assert format_bytes(n, binary=True) == expected


def test_durations() -> None:
    assert [format_duration(s) for s in (None, 59.4, 61, 3725)] == ["--", "59s", "1m01s", "1h02m"]
