"""OpenTimelineIO: take a clip's media and source range from a timeline, and put the edit back beside it.

Source frames are counted from the media's first picture, the way `tokenflow edit
--frames` counts them. An OTIO clip gives its range in media time (`source_range`),
which starts at the media's own timecode: DaVinci Resolve's exports, for instance,
write bare file paths, rates like 29.97002997 and an `available_range` starting at the
media's start timecode (01:00:00:00 = 108000 frames at 30000/1001). So the first frame
is `source_range.start - available_range.start`, counted at the media's frame rate;
without an `available_range` the start timecode comes from the file itself.

The edited timeline is the source timeline with one new video track right above the
source clip's track, holding the edited media at the same record time and with the
same `source_range`: its media reference is given the source times it replaces, so an
OTIO-reading editor (Resolve 18.5+, Hiero/Nuke Studio, OpenRV) relinks it frame-exact.
"""

from __future__ import annotations

import copy
import os
import urllib.parse
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import opentimelineio as otio

from bridge.media import probe
from bridge.media.errors import MediaError
from bridge.media.timecode import timecode_to_frames

RT = otio.opentime.RationalTime
TR = otio.opentime.TimeRange


class OtioError(ValueError):
    """The timeline or the clip cannot be used; the message says what to do."""


@dataclass
class OtioPick:
    timeline: otio.schema.Timeline
    clip: otio.schema.Clip
    track_number: int  # 1-based among video tracks, bottom first
    media: Path
    frame_rate: Fraction  # the media's exact rate
    first: int  # source frames, from the media's first picture, inclusive
    last: int


def read_timeline(path: str | os.PathLike) -> otio.schema.Timeline:
    try:
        result = otio.adapters.read_from_file(str(path))
    except FileNotFoundError:
        raise OtioError(f"{path} does not exist: check the path of the timeline file.") from None
    except Exception as exc:  # adapters raise many kinds; all mean the same to the user
        raise OtioError(f"{path} is not a timeline OpenTimelineIO can read ({exc}).") from None
    if isinstance(result, otio.schema.SerializableCollection):
        timelines = list(result.find_children(descended_from_type=otio.schema.Timeline))
        if len(timelines) != 1:
            raise OtioError(f"{path} holds {len(timelines)} timelines; export the one to edit on its own.")
        result = timelines[0]
    if not isinstance(result, otio.schema.Timeline):
        raise OtioError(f"{path} holds no timeline.")
    return result


def _clips(track: otio.schema.Track) -> list[otio.schema.Clip]:
    return [item for item in track if isinstance(item, otio.schema.Clip)]


def _describe(timeline: otio.schema.Timeline) -> str:
    names = [f"{c.name!r} (track {t}, index {i})" for t, track in enumerate(timeline.video_tracks(), 1)
             for i, c in enumerate(_clips(track), 1)]
    return ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") if names else "none"


def find_clip(timeline: otio.schema.Timeline, name: str | None = None, track: int | None = None,
              index: int | None = None) -> tuple[otio.schema.Clip, int]:
    """The clip by name, or by video track and index (both from 1, bottom track first), or the only clip."""
    tracks = list(timeline.video_tracks())
    if track is not None or index is not None:
        if track is None or index is None:
            raise OtioError("--track and --index go together (both count from 1, the bottom video track first).")
        if not 1 <= track <= len(tracks):
            raise OtioError(f"There is no video track {track}; the timeline has {len(tracks)}.")
        clips = _clips(tracks[track - 1])
        if not 1 <= index <= len(clips):
            raise OtioError(f"Video track {track} has {len(clips)} clips (gaps not counted); there is no clip {index}.")
        return clips[index - 1], track
    found = [(c, t) for t, tr in enumerate(tracks, 1) for c in _clips(tr) if name is None or c.name == name]
    if len(found) == 1:
        return found[0]
    if not found:
        what = f"no video clip named {name!r}" if name is not None else "no video clip"
        raise OtioError(f"The timeline has {what}. Its clips: {_describe(timeline)}.")
    if name is None:
        raise OtioError(f"The timeline has {len(found)} video clips; name one with --clip NAME or "
                        f"--track N --index I. Its clips: {_describe(timeline)}.")
    raise OtioError(f"{len(found)} clips are named {name!r}; pick one with --track N --index I: "
                    + ", ".join(f"track {t}, index {_clips(tracks[t - 1]).index(c) + 1}" for c, t in found) + ".")


def media_path(url: str, base: Path | None = None) -> Path:
    """A media reference's target_url as a local path: file:// URLs, bare paths (Resolve's), relative paths."""
    if url.startswith("file:"):
        parsed = urllib.parse.urlparse(url)
        path = Path(urllib.request.url2pathname(parsed.path))
    else:
        path = Path(url)
    if not path.is_absolute() and base is not None:
        path = base / path
    return path


def _frames(time: otio.opentime.RationalTime, rate: Fraction) -> float:
    return time.value_rescaled_to(float(rate))


def pick(timeline: otio.schema.Timeline, name: str | None = None, track: int | None = None,
         index: int | None = None, base: Path | None = None) -> OtioPick:
    """The clip's media file and its source frames [first, last]."""
    clip, track_number = find_clip(timeline, name, track, index)
    ref = clip.media_reference
    if isinstance(ref, otio.schema.ImageSequenceReference):
        raise OtioError(f"{clip.name!r} is an image sequence; TokenFlow edits movie files. Render the clip to a "
                        "movie (ProRes, DNxHR) and point the timeline at it.")
    if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
        raise OtioError(f"{clip.name!r} has no media file (a missing or generated reference); relink it in the "
                        "editor and export the timeline again.")
    media = media_path(ref.target_url, base)
    try:
        info = probe(media)
    except MediaError as exc:
        raise OtioError(f"The media of {clip.name!r}: {exc}") from None
    rate = info.frame_rate
    if ref.available_range is not None:
        media_start = ref.available_range.start_time
    elif info.start_timecode:
        media_start = RT(timecode_to_frames(info.start_timecode, rate)[0], float(rate))
    else:
        media_start = RT(0, float(rate))
    source = clip.source_range or ref.available_range
    if source is None:
        raise OtioError(f"{clip.name!r} has no source range and its media no available range.")
    first = round(_frames(source.start_time, rate) - _frames(media_start, rate))
    count = round(_frames(source.duration, rate))
    last = first + count - 1
    if count < 1:
        raise OtioError(f"{clip.name!r} is empty on the timeline.")
    if first < 0 or last >= info.frame_count:
        raise OtioError(f"{clip.name!r} uses source frames {first}..{last}, but {media} has frames 0..{info.frame_count - 1}"
                        " (counted from its start timecode). The timeline does not match this file: relink it.")
    return OtioPick(timeline, clip, track_number, media, rate, first, last)


def _reference_like(original_url: str, path: Path) -> str:
    """The new media's URL in the same style as the source's (bare path, as Resolve writes, or a file:// URL)."""
    return Path(path).absolute().as_uri() if original_url.startswith("file:") else str(Path(path).absolute())


def edited_reference(chosen: OtioPick, output: str | os.PathLike, *, sequence: bool) -> otio.core.MediaReference:
    """A reference to the edited media, holding exactly the source times it replaces."""
    n = chosen.last - chosen.first + 1
    source = chosen.clip.source_range or chosen.clip.media_reference.available_range
    start = source.start_time.rescaled_to(float(chosen.frame_rate))
    available = TR(RT(round(start.value), float(chosen.frame_rate)), RT(n, float(chosen.frame_rate)))
    if not sequence:
        return otio.schema.ExternalReference(
            target_url=_reference_like(chosen.clip.media_reference.target_url, Path(output)), available_range=available)
    pattern = Path(output)
    prefix, _, rest = pattern.name.partition("%")
    digits = rest.split("d", 1)[0].lstrip("0") or "1"
    suffix = rest.split("d", 1)[1]
    base = _reference_like(chosen.clip.media_reference.target_url, pattern.parent)
    return otio.schema.ImageSequenceReference(
        target_url_base=base.rstrip("/") + "/", name_prefix=prefix, name_suffix=suffix, start_frame=chosen.first,
        frame_step=1, rate=float(chosen.frame_rate), frame_zero_padding=int(digits), available_range=available)


def with_edit(chosen: OtioPick, output: str | os.PathLike, *, sequence: bool,
              metadata: dict | None = None) -> otio.schema.Timeline:
    """A copy of the timeline with the edit on a new video track right above the source clip's."""
    timeline = copy.deepcopy(chosen.timeline)
    source_track = list(timeline.video_tracks())[chosen.track_number - 1]
    source_clip = _clips(source_track)[_clips(list(chosen.timeline.video_tracks())[chosen.track_number - 1])
                                        .index(chosen.clip)]
    placed = source_clip.range_in_parent()
    track = otio.schema.Track(name=f"{source_track.name or 'V' + str(chosen.track_number)} TokenFlow",
                              kind=otio.schema.TrackKind.Video)
    if source_track.source_range is not None:
        track.source_range = copy.deepcopy(source_track.source_range)
    if placed.start_time.value > 0:
        track.append(otio.schema.Gap(source_range=TR(RT(0, placed.start_time.rate), placed.start_time)))
    edited = otio.schema.Clip(
        name=f"{chosen.clip.name} (TokenFlow)", media_reference=edited_reference(chosen, output, sequence=sequence),
        source_range=copy.deepcopy(source_clip.source_range) if source_clip.source_range else None)
    edited.metadata["tokenflow"] = {"source": str(chosen.media), "frames": f"{chosen.first}:{chosen.last}",
                                    **(metadata or {})}
    track.append(edited)
    stack = timeline.tracks
    stack.insert(list(stack).index(source_track) + 1, track)
    return timeline


def write_new(timeline: otio.schema.Timeline, path: str | os.PathLike) -> None:
    """Write the timeline to a new file; an existing one is never replaced."""
    path = Path(path)
    if path.exists():
        raise OtioError(f"{path} exists; name a new file for the edited timeline.")
    partial = path.with_name(path.name + ".partial" + path.suffix)
    try:
        otio.adapters.write_to_file(timeline, str(partial))
        os.replace(partial, path)
    except Exception:
        partial.unlink(missing_ok=True)
        raise
