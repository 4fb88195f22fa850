"""Frame ranges as editors mark them: in and out points, both inclusive, from 0."""

from __future__ import annotations

import re

from bridge.media.errors import MediaError

_RANGE = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")


def parse_frame_range(spec: str | None, frame_count: int) -> tuple[int, int]:
    """Turn "FIRST:LAST", "FIRST:", ":LAST" or None into an inclusive (first, last).

    Both ends are inclusive because that is how in/out marks behave in an editor; an
    open end means the clip's own start or end.
    """
    if frame_count <= 0:
        raise MediaError("The clip has no frames: pick a clip with video in it.")
    valid = f"0:{frame_count - 1}"
    if spec is None:
        return 0, frame_count - 1
    match = _RANGE.match(spec)
    if match is None:
        raise MediaError(
            f"Frame range {spec!r} is not FIRST:LAST: write it like 10:49, 10: or :49 "
            f"(this clip's frames are {valid})."
        )
    first_text, last_text = match.groups()
    first = int(first_text) if first_text else 0
    last = int(last_text) if last_text else frame_count - 1
    if last < first:
        raise MediaError(
            f"Frame range {spec!r} is empty because LAST comes before FIRST: "
            f"swap them (this clip's frames are {valid})."
        )
    if last >= frame_count:
        raise MediaError(
            f"Frame range {spec!r} runs past the end of the clip, which has {frame_count} frames: "
            f"keep it within {valid}."
        )
    return first, last
