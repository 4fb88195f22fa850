"""Our SMPTE timecode arithmetic (bridge/media/timecode.py) against OpenTimelineIO's opentime.

OTIO is the oracle where it does the same job: every rate, both directions, over a whole day.
Where it differs, the module keeps its own code and says why; the tests below pin those
differences, so that an OTIO release that closes them shows up here (then use OTIO there).
"""

from __future__ import annotations

from fractions import Fraction

import opentimelineio.opentime as otio
import pytest

from bridge.media.timecode import frame_timecode, frames_to_timecode, timecode_to_frames

NTSC = Fraction(30000, 1001)
NTSC60 = Fraction(60000, 1001)
FILM = Fraction(24000, 1001)
NON_DROP_RATES = [FILM, Fraction(24), Fraction(25), NTSC, Fraction(30), Fraction(50), NTSC60, Fraction(60)]
DROP_RATES = [NTSC, NTSC60]


def _day(rate: Fraction, step: int) -> range:
    return range(0, round(rate) * 86400, step)


def _otio_timecode(number: int, rate: Fraction, drop_frame: bool) -> str:
    return otio.to_timecode(otio.RationalTime(number, float(rate)), float(rate), drop_frame)


@pytest.mark.parametrize("rate", NON_DROP_RATES, ids=str)
def test_non_drop_agrees_with_otio(rate: Fraction) -> None:
    # 29.97/59.94 stop 90 s short of midnight: there OTIO wraps early (see below)
    last = round(rate) * (86400 - 90)
    for number in _day(rate, 1009):
        ours = frames_to_timecode(number, rate, drop_frame=False)
        assert otio.from_timecode(ours, float(rate)).to_frames() == timecode_to_frames(ours, rate)[0] == number
        if number < last or rate.denominator == 1:
            assert ours == _otio_timecode(number, rate, False)


@pytest.mark.parametrize("rate", DROP_RATES, ids=str)
def test_drop_frame_agrees_with_otio(rate: Fraction) -> None:
    per_ten_minutes = 17982 * round(rate) // 30
    numbers = [*range(0, per_ten_minutes * 6 * 24, 997), *range(per_ten_minutes - 5, per_ten_minutes + 5), *range(1795, 1805)]
    for number in numbers:
        ours = frames_to_timecode(number, rate, drop_frame=True)
        assert ours == _otio_timecode(number, rate, True)
        assert otio.from_timecode(ours, float(rate)).to_frames() == timecode_to_frames(ours, rate)[0] == number


# --- where OTIO differs, and so we keep ours ---


def test_otio_wraps_ntsc_non_drop_early_near_midnight() -> None:
    number = 30 * (86400 - 86)  # past 24 real hours (86400 s at 29.97 fps), 86 timecode seconds before midnight
    assert frames_to_timecode(number, NTSC, drop_frame=False) == "23:58:34:00"
    assert _otio_timecode(number, NTSC, False).startswith("00:00:00")


@pytest.mark.parametrize("rate", [Fraction(25), Fraction(120), Fraction(120000, 1001)], ids=str)
def test_otio_refuses_what_files_carry(rate: Fraction) -> None:
    """Drop-frame style at 25 fps, and rates outside OTIO's SMPTE list: we format, OTIO raises."""
    drop_frame = rate == 25
    assert frames_to_timecode(90, rate, drop_frame) in ("00:00:03;15", "00:00:00:90")
    with pytest.raises(ValueError):
        _otio_timecode(90, rate, drop_frame)


@pytest.mark.parametrize(("timecode", "rate"), [("01:61:00:00", Fraction(25)), ("01:00:00:100", Fraction(25)),
                                                ("01:00:00:00:00", Fraction(25))])
def test_otio_reads_what_is_not_a_timecode(timecode: str, rate: Fraction) -> None:
    otio.from_timecode(timecode, float(rate))  # no complaint
    with pytest.raises(ValueError):
        timecode_to_frames(timecode, rate)


def test_otio_reads_a_comma_as_non_drop() -> None:
    assert timecode_to_frames("01:00:00,00", NTSC) == (107892, True)  # "," is drop-frame in the wild
    assert otio.from_timecode("01:00:00,00", float(NTSC)).to_frames() == 108000


# --- the panel's frame timecode (ui/model/clip.py calls this) ---


def test_frame_timecode() -> None:
    assert frame_timecode("00:00:59;28", 2, NTSC) == "00:01:00;02"
    assert frame_timecode(None, 31, NTSC) == "00:00:01:01"
    assert frame_timecode("junk", 25, Fraction(25)) == "00:00:01:00"  # odd metadata: counted from zero
    assert frame_timecode("10:00:00:00", 0, FILM) == "10:00:00:00"
