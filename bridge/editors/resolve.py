"""DaVinci Resolve: which clips to edit, and how the results come back onto the timeline.

Runs inside Resolve's own Python (Workspace > Scripts > TokenFlow), so it uses the
standard library only and Python 3.7 syntax. The launcher loads this module and
bridge/editors/handoff.py from the project's folder under a private package name (see
packaging/resolve/TokenFlow.py), which is why the import below is relative.

Facts about Resolve's scripting API this relies on (README shipped with Resolve, and
what users measured):
- `TimelineItem.GetLeftOffset()` and `GetDuration()` count timeline frames; a clip whose
  frame rate differs from the timeline's is conformed, so source frames = timeline
  frames x (clip rate / timeline rate). `GetSourceStartFrame()` is off by one on some
  versions and is not used.
- `Timeline.GetMarkInOut()` (19.1+) gives marks as offsets from the timeline's start
  frame (the README's example starts at 0), both inclusive; keys are absent when a mark
  is not set. Marks that only make sense as timeline frames are read as such.
- `MediaPool.ImportMedia([{"FilePath": pattern, "StartIndex": a, "EndIndex": b}])`
  imports an image sequence; the import goes into the *current* folder. With the media
  pool's "Show Individual Frames" on it imports one still per image instead.
- `MediaPool.AppendToTimeline([{clipInfo}])` never overwrites: a clip that would overlap
  another is dropped without an error. `endFrame` is exclusive on 18.x and 20+, but
  inclusive on 19.1.x (there `endFrame` = the frame count appends nothing).
- A method this version lacks is still an attribute, with the value None (`hasattr` is
  true for every name), so every call newer than 18.5 goes through `method()`:
  `TimelineItem.GetTrackTypeAndIndex` (19.0.0), `MediaPoolItem.SetThirdPartyMetadata`
  (19.0.2), `Timeline.GetMarkInOut`/`SetMarkInOut`/`ClearMarkInOut` (19.1),
  `Timeline.GetSelectedClips` (21.0; no README documents a `GetSelectedItems`).
  Studio-only calls answer False on the free edition; none is used.
- UIManager windows return nothing on the free edition since 19.1: no UIManager here.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

from .handoff import (
    ClipRef,
    HandoffRequest,
    HandoffResult,
    ResultState,
    child_environment,
    image_sequence,
    split_prompts,
)

EDITOR = "resolve"
BIN_NAME = "AI Edits"
RESULT_CLIP_COLOR = "Purple"
# Clip-property "FPS" strings Resolve shows rounded, and the exact rates they stand for.
_NTSC_RATES = {"23.976": Fraction(24000, 1001), "29.97": Fraction(30000, 1001), "47.952": Fraction(48000, 1001),
               "59.94": Fraction(60000, 1001), "119.88": Fraction(120000, 1001)}
# Media-pool clip types that hold no single media file.
_NOT_A_FILE = {"compound": "a compound clip", "timeline": "a timeline (nested)", "multicam": "a multicam clip",
               "fusion clip": "a Fusion clip", "generator": "a generator", "title": "a title"}


class ResolveProblem(Exception):
    """Something about the project or a clip the user has to change; the message says what."""


@dataclass
class Picked:
    """A clip to edit: what goes to the project's environment, and the context to place the result."""

    clip: ClipRef
    timeline_frames: int  # how long the edited range is on the timeline
    timeline_id: str


# --- rates and numbers ---


def exact_rate(text: Any) -> Fraction:
    """Resolve's frame-rate strings ("29.97", "24", "23.976 DF") as exact rationals."""
    raw = str(text).strip().split()[0] if str(text).strip() else ""
    if raw in _NTSC_RATES:
        return _NTSC_RATES[raw]
    try:
        value = Fraction(raw)
    except (ValueError, ZeroDivisionError):
        raise ResolveProblem(f"Resolve reported the frame rate {text!r}, which is not a number.") from None
    if value <= 0:
        raise ResolveProblem(f"Resolve reported the frame rate {text!r}.")
    # 29.97002997 and friends: snap to the NTSC rate they are close to.
    for exact in _NTSC_RATES.values():
        if abs(value - exact) < Fraction(1, 1000):
            return exact
    return value


def rate_text(rate: Fraction) -> str:
    return str(rate.numerator) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def method(obj: Any, name: str) -> Callable[..., Any] | None:
    """`obj.name` when this Resolve has it, else None (Resolve answers None for a method it lacks)."""
    found = getattr(obj, name, None)
    return found if callable(found) else None


def version_of(resolve: Any) -> tuple[int, ...]:
    """(19, 1, 3) from GetVersion()'s [major, minor, patch, build, suffix]; () when it says nothing usable."""
    numbers = []
    for part in list(resolve.GetVersion() or [])[:3]:
        try:
            numbers.append(int(part))
        except (TypeError, ValueError):
            break
    return tuple(numbers)


def end_frame_inclusive(version: Sequence[int]) -> bool:
    """Whether this version's AppendToTimeline reads `endFrame` as the last frame (19.1.x) or one past it."""
    return (19, 1) <= tuple(version[:2]) < (19, 2)


def is_studio(resolve: Any) -> bool:
    """The Studio edition; the free one is "DaVinci Resolve". Studio-only calls are gated on this."""
    return "studio" in str(resolve.GetProductName() or "").lower()


# --- what to edit ---


def _timeline(resolve: Any) -> tuple[Any, Any]:
    project = resolve.GetProjectManager().GetCurrentProject()
    if project is None:
        raise ResolveProblem("No project is open in DaVinci Resolve.")
    timeline = project.GetCurrentTimeline()
    if timeline is None:
        raise ResolveProblem("No timeline is open: open one on the Edit page and put the playhead over a clip.")
    return project, timeline


def video_marks(timeline: Any) -> tuple[int, int] | None:
    """The timeline's video in/out marks as absolute timeline frames (both inclusive), or None."""
    getter = method(timeline, "GetMarkInOut")
    marks: Any = getter() if getter else None  # Resolve before 19.1 has no marks API
    video = (marks or {}).get("video") or {}
    if "in" not in video or "out" not in video:
        return None
    start, end = int(timeline.GetStartFrame()), int(timeline.GetEndFrame())
    mark_in, mark_out = int(video["in"]), int(video["out"])
    # Documented as offsets from the start frame; a Resolve that answers in timeline frames
    # (01:00:00:00 = 86400 at 24 fps) is recognised by marks that only fit that way.
    if start + mark_out > end and start <= mark_in and mark_out <= end:
        return mark_in, mark_out
    return start + mark_in, start + mark_out


def _items_in_range(timeline: Any, first: int, last: int) -> list[Any]:
    """Video items on enabled tracks overlapping [first, last], bottom track first."""
    found = []
    for track in range(1, int(timeline.GetTrackCount("video") or 0) + 1):
        if not timeline.GetIsTrackEnabled("video", track):
            continue
        for item in timeline.GetItemListInTrack("video", track) or []:
            if item.GetStart() <= last and item.GetEnd() > first:
                found.append(item)
    return found


def track_of(timeline: Any, item: Any) -> tuple[str, int]:
    """("video", 2): the item's track; before 19.0 (no GetTrackTypeAndIndex) found by looking on each track."""
    getter = method(item, "GetTrackTypeAndIndex")
    if getter:
        answer = getter() or []
        if len(answer) >= 2:
            return str(answer[0]), int(answer[1])
    key = _identity(item)
    for kind in ("video", "audio", "subtitle"):
        for track in range(1, int(timeline.GetTrackCount(kind) or 0) + 1):
            if any(_identity(other) == key for other in timeline.GetItemListInTrack(kind, track) or []):
                return kind, track
    return "video", 1


def _identity(item: Any) -> tuple:
    unique = method(item, "GetUniqueId")
    return (unique(),) if unique else (item.GetName(), item.GetStart(), item.GetEnd())


def _selected_items(timeline: Any) -> list[Any]:
    """Timeline items the user selected: `Timeline.GetSelectedClips()` (21.0+), else nothing."""
    getter = method(timeline, "GetSelectedClips")
    if getter is None:
        return []
    items: Any = getter() or []
    if isinstance(items, dict):  # Resolve's lists sometimes come as {1: item, 2: item}
        items = [items[k] for k in sorted(items)]
    return [i for i in items if track_of(timeline, i)[0] == "video"]


def pick_items(timeline: Any) -> tuple[list[Any], tuple[int, int] | None]:
    """The items to edit and the range to clip them to: in/out marks, else the selection, else the playhead's clip."""
    marks = video_marks(timeline)
    if marks is not None:
        items = _items_in_range(timeline, *marks)
        if not items:
            raise ResolveProblem("No video clip lies between the in and out marks; move the marks or clear them "
                                 "(Alt+X) to edit the clip under the playhead.")
        return items, marks
    selected = _selected_items(timeline)
    if selected:
        return selected, None
    item = timeline.GetCurrentVideoItem()
    if item is None:
        raise ResolveProblem("No video clip under the playhead: put the playhead over a clip on the Edit page, "
                             "or set in/out marks around the clips to edit.")
    return [item], None


def _clip_property(media_item: Any, key: str) -> str:
    value = media_item.GetClipProperty(key)
    return "" if value is None else str(value)


def clip_of(item: Any, timeline: Any, marks: tuple[int, int] | None = None) -> Picked:
    """The source range of one timeline item (clipped to the marks), or ResolveProblem saying why not."""
    name = item.GetName() or "the clip"
    media_item = item.GetMediaPoolItem()
    if media_item is None:
        raise ResolveProblem(f"'{name}' is a generator, title or Fusion composition: it has no media file to edit. "
                             "Render it in place (right-click > Render in Place) and run TokenFlow on that.")
    kind = _clip_property(media_item, "Type").strip().lower()
    if kind in _NOT_A_FILE:
        raise ResolveProblem(f"'{name}' is {_NOT_A_FILE[kind]}, not a media file. Render it in place (right-click > Render in Place) "
                             "and run TokenFlow on that.")
    media = _clip_property(media_item, "File Path")
    if not media:
        raise ResolveProblem(f"'{name}' has no media file (offline, or made inside Resolve). Relink it, or render it "
                             "in place first.")
    if not os.path.isfile(media):
        raise ResolveProblem(f"The media of '{name}' is not on this machine: {media}. Relink the clip.")

    start, end = int(item.GetStart()), int(item.GetEnd())  # end is exclusive
    first_tl, end_tl = start, end
    if marks is not None:
        first_tl, end_tl = max(start, marks[0]), min(end, marks[1] + 1)
    if end_tl <= first_tl:
        raise ResolveProblem(f"'{name}' lies outside the in/out marks.")

    source_rate = exact_rate(_clip_property(media_item, "FPS") or timeline.GetSetting("timelineFrameRate"))
    timeline_rate = exact_rate(timeline.GetSetting("timelineFrameRate"))
    scale = source_rate / timeline_rate  # source frames per timeline frame (1 unless conformed)
    left = int(item.GetLeftOffset())
    first = int(round((left + first_tl - start) * scale))
    last = int(round((left + end_tl - start) * scale)) - 1
    track = track_of(timeline, item)[1]
    unique = method(item, "GetUniqueId")
    clip = ClipRef(
        media=media, first=first, last=last, frame_rate=rate_text(source_rate),
        start_timecode=_clip_property(media_item, "Start TC") or None, name=name, editor=EDITOR,
        track=int(track), record_frame=first_tl, item_id=str(unique()) if unique else None,
    )
    return Picked(clip=clip, timeline_frames=end_tl - first_tl, timeline_id=str(timeline.GetUniqueId()))


def collect(resolve: Any) -> tuple[list[Picked], list[str]]:
    """Every clip to edit, and a sentence for each clip that cannot be edited."""
    _, timeline = _timeline(resolve)
    page = resolve.GetCurrentPage()
    if page not in (None, "edit", "cut"):
        raise ResolveProblem(f"Run TokenFlow from the Edit page (you are on the {page.capitalize()} page).")
    items, marks = pick_items(timeline)
    picked, problems = [], []
    for item in items:
        try:
            picked.append(clip_of(item, timeline, marks))
        except ResolveProblem as exc:
            problems.append(str(exc))
    return picked, problems


# --- the result back on the timeline ---


def import_description(result: HandoffResult) -> dict[str, Any]:
    """The clipInfo for MediaPool.ImportMedia: an image-sequence pattern with its index range, or the movie."""
    if not result.output:
        raise ResolveProblem("The result has no output file.")
    sequence = image_sequence(result)
    if sequence is not None:
        pattern, first, last = sequence
        return {"FilePath": pattern, "StartIndex": first, "EndIndex": last}
    return {"FilePath": result.output}


def _bin(media_pool: Any) -> Any:
    root = media_pool.GetRootFolder()
    for folder in root.GetSubFolderList() or []:
        if folder.GetName() == BIN_NAME:
            return folder
    folder = media_pool.AddSubFolder(root, BIN_NAME)
    if folder is None:
        raise ResolveProblem(f"Resolve refused to make the '{BIN_NAME}' bin in the media pool.")
    return folder


def _free_over(timeline: Any, track: int, first: int, end: int) -> bool:
    if timeline.GetIsTrackLocked("video", track):
        return False
    return all(i.GetEnd() <= first or i.GetStart() >= end for i in timeline.GetItemListInTrack("video", track) or [])


def free_track_above(timeline: Any, track: int, first: int, end: int) -> int | None:
    """The first unlocked video track above `track` with nothing in [first, end), or None."""
    for candidate in range(track + 1, int(timeline.GetTrackCount("video") or 0) + 1):
        if _free_over(timeline, candidate, first, end):
            return candidate
    return None


def _set_metadata(media_item: Any, result: HandoffResult) -> None:
    note = "TokenFlow: {!r}, seed {}, job {}".format(result.prompt or "", result.seed if result.seed is not None
                                                      else "default", result.job_id or "?")
    media_item.SetMetadata("Comments", note)
    media_item.SetMetadata("Description", result.prompt or "")
    third_party = method(media_item, "SetThirdPartyMetadata")
    if third_party:  # 19.0.2+: named fields a pipeline can read back
        third_party({"TokenFlow Prompt": result.prompt or "", "TokenFlow Seed": "" if result.seed is None
                     else str(result.seed), "TokenFlow Job": result.job_id or ""})


def _find_timeline(project: Any, timeline_id: str) -> Any | None:
    for index in range(1, int(project.GetTimelineCount() or 0) + 1):
        timeline = project.GetTimelineByIndex(index)
        if timeline is not None and str(timeline.GetUniqueId()) == timeline_id:
            return timeline
    return None


def look_name(clip_name: str, result: HandoffResult) -> str:
    """The media-pool name of one look of several: 'carphone 2: pencil sketch' (the prompt's number and text)."""
    return "{} {}: {}".format(clip_name, result.variant + 1, result.prompt or "")


def place(resolve: Any, picked: Picked, result: HandoffResult, looks: int = 1) -> str:
    """Import a done result into the "AI Edits" bin and put it above its source, frame-aligned.

    With several looks (`looks` prompts in one job) each is named after its prompt in the
    bin and goes on the first free track above the source when it arrives: the looks
    stack in prompt order, the first nearest the source (`launch` places them so).
    Restores the media pool's current folder, the current timeline and the in/out marks.
    Returns a sentence saying where the clip went.
    """
    if result.state != ResultState.DONE:
        raise ResolveProblem(f"'{picked.clip.name}': {result.message or result.state}")
    project, current = _timeline(resolve)
    media_pool = project.GetMediaPool()
    timeline = current
    if str(current.GetUniqueId()) != picked.timeline_id:
        timeline = _find_timeline(project, picked.timeline_id)
        if timeline is None:
            raise ResolveProblem(f"The timeline of '{picked.clip.name}' is gone; the result is at {result.output}.")
    get_marks = method(timeline, "GetMarkInOut")
    marks = get_marks() if get_marks else None

    folder = media_pool.GetCurrentFolder()
    try:
        media_pool.SetCurrentFolder(_bin(media_pool))
        imported = media_pool.ImportMedia([import_description(result)]) or []
    finally:
        if folder is not None:
            media_pool.SetCurrentFolder(folder)
    if not imported:
        raise ResolveProblem(f"Resolve did not import {result.output}; import it by hand from the '{BIN_NAME}' bin.")
    _refuse_single_frames(media_pool, imported, result, picked.clip.name)
    media_item = imported[0]
    _set_metadata(media_item, result)
    if looks > 1:  # the file names differ only by the prompt's slug (sequences not even that): say which look
        media_item.SetClipProperty("Clip Name", look_name(picked.clip.name, result))

    clip = picked.clip
    first, end = int(clip.record_frame or 0), int(clip.record_frame or 0) + picked.timeline_frames
    source_track = int(clip.track or 1)
    switched = timeline is not current
    try:
        if switched:
            project.SetCurrentTimeline(timeline)  # AppendToTimeline works on the current timeline
        track = free_track_above(timeline, source_track, first, end)
        if track is None:
            if not timeline.AddTrack("video"):
                raise ResolveProblem(f"Resolve refused to add a video track for the result; it is in the '{BIN_NAME}' bin."
                                     )
            track = int(timeline.GetTrackCount("video"))
        placed = append(resolve, media_pool, timeline, media_item, clip.last - clip.first + 1, track, first,
                        picked.timeline_frames)
        if not placed or placed[0].GetStart() != first:
            raise ResolveProblem(f"Resolve did not place the result of '{clip.name}' at frame {first} on V{track}; it is in the '{BIN_NAME}' "
                                 "bin.")
        placed[0].SetClipColor(RESULT_CLIP_COLOR)
        if placed[0].GetDuration() != picked.timeline_frames:
            # e.g. an image sequence imported at the project's image-sequence rate, not the clip's
            raise ResolveProblem(f"The result of '{clip.name}' is on V{track} from frame {first}, but "
                                 f"{placed[0].GetDuration()} frames long instead of {picked.timeline_frames}: "
                                 f"Resolve gave it another frame rate. Set the rate of the '{BIN_NAME}' clip in Clip "
                                 f"Attributes to {clip.frame_rate}, or use a movie format.")
    finally:
        if switched:
            project.SetCurrentTimeline(current)
        _restore_marks(timeline, marks)
    return "'{}' edited ({!r}) is on V{} from timeline frame {}, in the '{}' bin.".format(
        clip.name, result.prompt or "", track, first, BIN_NAME)


def append(resolve: Any, media_pool: Any, timeline: Any, media_item: Any, frames: int, track: int, record: int,
           timeline_frames: int) -> list[Any]:
    """Append the first `frames` frames of `media_item` at `record` on V`track`; the items placed.

    `endFrame` is inclusive on 19.1.x and exclusive elsewhere: chosen by version, then
    checked against what was placed and corrected once (a Resolve that reads it the
    other way places nothing, or one frame short).
    """
    inclusive = end_frame_inclusive(version_of(resolve))
    ends = (frames - 1, frames) if inclusive else (frames, frames - 1)

    def once(end: int) -> list[Any]:
        appended = media_pool.AppendToTimeline([{"mediaPoolItem": media_item, "startFrame": 0, "endFrame": end,
                                                 "mediaType": 1, "trackIndex": track, "recordFrame": record}]) or []
        return [i for i in appended if i is not None]

    placed = once(ends[0])
    if not placed:
        return once(ends[1])
    delete = method(timeline, "DeleteClips")
    if placed[0].GetDuration() == timeline_frames - 1 and delete is not None and delete(placed, False):
        return once(ends[1]) or once(ends[0])  # one frame short: read the other way (put back if that fails)
    return placed


def _refuse_single_frames(media_pool: Any, imported: list[Any], result: HandoffResult, name: str) -> None:
    """An image sequence that came back as one still per image ("Show Individual Frames" is on): undo, say so."""
    sequence = image_sequence(result)
    if sequence is None or len(imported) <= 1:
        return
    delete = method(media_pool, "DeleteClips")
    if delete:  # the stills are ours, just imported: leave the bin as it was
        delete(imported)
    raise ResolveProblem(
        f"Resolve imported the result of '{name}' as {len(imported)} single images, because the media pool shows "
        "image sequences as individual frames. Turn that off (Media Pool > View, or right-click > Show Individual "
        f"Frames, unticked) and run TokenFlow again, or choose a movie format (the default, ProRes .mov). The "
        f"images are in {os.path.dirname(sequence[0])}.")


def _restore_marks(timeline: Any, marks: dict[str, Any] | None) -> None:
    getter = method(timeline, "GetMarkInOut")
    if getter is None or marks is None or getter() == marks:
        return
    video = marks.get("video") or {}
    if "in" in video and "out" in video:
        timeline.SetMarkInOut(video["in"], video["out"], "video")
    else:
        timeline.ClearMarkInOut("video")


# --- the launcher's flow ---


def request_for(picked: Sequence[Picked], mode: str, prompt: str | Sequence[str] | None = None,
                seed: int | None = None, options: dict[str, Any] | None = None) -> HandoffRequest:
    """`prompt`: one prompt, or a list of them (several looks of each clip, in one job per clip).
    `options`: further HandoffRequest fields (preset, output_dir, params, negative_prompt)."""
    first, variants = split_prompts(prompt)
    return HandoffRequest(clips=[p.clip for p in picked], mode=mode, prompt=first, seed=seed,
                          **{"variants": variants, **(options or {})})


def run_handoff(argv: Sequence[str], env: dict[str, str], request: HandoffRequest,
                on_result: Callable[[HandoffResult], None], on_log: Callable[[str], None] = print) -> int:
    """Run `tokenflow handoff` (`argv`, recorded by the installer) and feed its result lines to `on_result`."""
    process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=child_environment(env), universal_newlines=True)
    assert process.stdin is not None and process.stdout is not None  # both asked for as PIPE
    process.stdin.write(request.to_json())
    process.stdin.close()
    for line in process.stdout:
        line = line.rstrip("\n")
        result = HandoffResult.from_line(line)
        if result is not None:
            on_result(result)
        elif line:
            on_log(line)
    return process.wait()


def launch(resolve: Any, argv: Sequence[str], env: dict[str, str],
           ask: Callable[[int], tuple[str, str | Sequence[str] | None, int | None] | None] | None = None,
           say: Callable[[str], None] = print, options: dict[str, Any] | None = None) -> int:
    """Workspace > Scripts > TokenFlow: collect the clips, hand off, place each result as it arrives.

    The prompt dialog is shown by the project's environment (mode "ask"), never in
    Resolve's own process: GUI code on Resolve's script thread can take Resolve down
    (macOS runs Tk only on a process's main thread). `ask` replaces the dialog (tests,
    other front ends): it returns (mode, prompt, seed), or None to stop; the prompt may be
    a list of prompts (several looks: one result per prompt, stacked above the source).
    Returns how many results were placed.
    """
    version = ".".join(str(v) for v in (resolve.GetVersion() or [])[:3])
    say("TokenFlow: {} {} ({} edition: only functions of every edition are used).".format(
        resolve.GetProductName(), version, "Studio" if is_studio(resolve) else "free"))
    try:
        picked, problems = collect(resolve)
    except ResolveProblem as exc:
        say("TokenFlow: " + str(exc))
        return 0
    for problem in problems:
        say("TokenFlow: skipped: " + problem)
    if not picked:
        return 0
    mode, prompt, seed = "ask", None, None
    if ask is not None:
        answer = ask(len(picked))
        if answer is None:
            return 0
        mode, prompt, seed = answer
    request = request_for(picked, mode, prompt, seed, options)
    placed = [0]
    # How many prompts each clip's job has: in mode "ask" only the child knows, and it says so in the
    # `queued` lines (one per prompt), which all come before the job's results.
    looks = [max(1, len(request.prompts))] * len(picked)

    def on_result(result: HandoffResult) -> None:
        if not 0 <= result.clip_index < len(picked):
            return
        clip = picked[result.clip_index]
        looks[result.clip_index] = max(looks[result.clip_index], result.variant + 1)
        if result.state == ResultState.QUEUED:
            if result.variant == 0:  # one job for every prompt of the clip: said once
                say(f"TokenFlow: '{clip.clip.name}' queued as job {result.job_id}.")
            return
        if result.state == ResultState.CANCELLED and not result.job_id:  # the dialog was closed: nothing was sent
            return
        try:
            say("TokenFlow: " + place(resolve, clip, result, looks=looks[result.clip_index]))
            placed[0] += 1
        except ResolveProblem as exc:
            say("TokenFlow: " + str(exc))

    for clip in picked:
        ref = clip.clip
        say(f"TokenFlow: '{ref.name}' source frames {ref.first}-{ref.last} of {ref.media} ({ref.frame_rate} fps), "
            f"record frame {ref.record_frame} on V{ref.track}.")
    code = run_handoff(argv, env, request, on_result, on_log=lambda line: say("  " + line))
    if code not in (0, 1):
        say(f"TokenFlow: the project's environment at {argv[0]} stopped with status {code}; run `tokenflow install resolve` "
            "again from it.")
    return placed[0]
