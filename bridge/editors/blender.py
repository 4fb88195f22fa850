"""Blender's Video Sequence Editor: a movie strip's source range, and the result placed back above it.

Runs inside Blender's Python (3.x, 4.x, 5.x), loaded by the TokenFlow add-on from the
project's folder under a private package name (packaging/blender/tokenflow_vse.py), so
it uses the standard library only and gets Blender's objects passed in. Blender 3.x
keeps strips in `sequence_editor.sequences`; 4.4+ in `sequence_editor.strips` (5.0
removed `sequences`).

Strip timing (all in scene frames): `animation_offset_start`/`_end` (the "hold
offsets", which Strip > Split with Hold Split sets) cut whole movie frames off the
movie's ends, so `frame_start` is where movie frame `animation_offset_start` sits;
`frame_final_start`/`frame_final_end` (end exclusive) are where the visible part sits,
`frame_offset_start` frames further in (negative: the first frame held). The RNA names
are the same in 3.4.1 and 5.0.1 (checked in both). Each movie frame takes
one scene frame whatever the two rates (measured in Blender 3.4 and 5.0: a 120-frame
29.97 fps movie is 120 frames long in a 24 fps scene), unless the strip is retimed.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Iterator, Sequence

from .handoff import ClipRef, HandoffRequest, HandoffResult, ResultState, child_environment, image_sequence

EDITOR = "blender"
MAX_CHANNEL = 128  # Blender's sequencer has channels 1..128
_NTSC = (Fraction(24000, 1001), Fraction(30000, 1001), Fraction(48000, 1001), Fraction(60000, 1001),
         Fraction(120000, 1001))


class BlenderProblem(Exception):
    """Something about the strip or the scene the user has to change; the message says what."""


def strips(editor: Any) -> Any:
    """The top-level strip collection: `strips` (4.4+, 5.x) or `sequences` (3.x, 4.x)."""
    collection = getattr(editor, "strips", None)
    return collection if collection is not None else editor.sequences


def active_strip(scene: Any) -> Any:
    editor = scene.sequence_editor
    strip = getattr(editor, "active_strip", None) if editor is not None else None
    if strip is None:
        raise BlenderProblem("No active strip: click a movie strip in the Sequencer, then run TokenFlow.")
    return strip


def exact_rate(value: float) -> Fraction:
    rate = Fraction(value).limit_denominator(1001)
    for ntsc in _NTSC:
        if abs(Fraction(value) - ntsc) < Fraction(1, 1000):
            return ntsc
    return rate


def scene_rate(scene: Any) -> Fraction:
    # fps_base is a float (1.001 for NTSC): read it back as the decimal the user typed.
    return Fraction(scene.render.fps) / Fraction(str(round(scene.render.fps_base, 6)))


@dataclass
class Placement:
    clip: ClipRef
    frame_start: int  # scene frame of the first edited frame
    frames: int  # scene frames the edited range covers
    scene: str
    meta: str | None = None  # the meta strip holding the source; the result goes in beside it


def parent_meta(strip: Any) -> Any:
    """The meta strip `strip` is inside, or None at the top level (`parent_meta()`: 3.x to 5.x)."""
    method = getattr(strip, "parent_meta", None)
    return method() if callable(method) else None


def container(editor: Any, meta_name: str | None) -> Any:
    """The strip collection the source sits in: the top level, or the named meta strip's own strips.

    A result put on the top level under a meta strip's channel never shows (the meta
    covers it), so it goes where the source is.
    """
    if not meta_name:
        return strips(editor)
    everything = getattr(editor, "strips_all", None)
    everything = everything if everything is not None else editor.sequences_all
    meta = everything.get(meta_name)
    if meta is None:
        raise BlenderProblem(f"The meta strip '{meta_name}' that held the source is gone.")
    return strips(meta)


def clip_of(strip: Any, scene: Any, abspath: Any = os.path.abspath) -> Placement:
    """The source range of a movie strip, honouring its trims and the movie's own rate.

    `abspath` turns Blender's '//relative' paths into absolute ones (bpy.path.abspath).
    """
    if strip.type != "MOVIE":
        raise BlenderProblem("'{}' is a {} strip; TokenFlow edits movie strips. Select one (or render this one to a "
                             "movie first).".format(strip.name, strip.type.lower().replace("_", " ")))
    media = abspath(strip.filepath)
    if not os.path.isfile(media):
        raise BlenderProblem(f"The movie of '{strip.name}' is missing: {media}. Relink it "
                             "(Strip > Inputs > Change Path/Files).")
    movie_rate = exact_rate(strip.fps) if getattr(strip, "fps", 0) else scene_rate(scene)
    if abs(float(getattr(strip, "speed_factor", 1.0)) - 1.0) > 1e-6 or _retimed(strip):
        raise BlenderProblem(f"'{strip.name}' is retimed (its speed is not 100%); set its speed back to 100% or render it to a "
                             "movie first.")
    if getattr(strip, "use_reverse_frames", False):
        raise BlenderProblem(f"'{strip.name}' plays backwards (Reverse Frames); untick it or render it to a movie first.")
    start, end = int(strip.frame_final_start), int(strip.frame_final_end)
    origin = float(strip.frame_start)
    held = int(getattr(strip, "animation_offset_start", 0))  # movie frames cut off the front by a hold offset
    first = int(round(start - origin)) + held
    last = int(round(end - origin)) - 1 + held
    if last < first:
        raise BlenderProblem(f"'{strip.name}' is empty.")
    if first < held or last >= held + int(strip.frame_duration):
        raise BlenderProblem(f"'{strip.name}' reaches past the ends of its movie (its first or last frame is held); "
                             "trim it to the movie's own frames.")
    rate = str(movie_rate.numerator) if movie_rate.denominator == 1 else f"{movie_rate.numerator}/{movie_rate.denominator}"
    clip = ClipRef(media=media, first=first, last=last, frame_rate=rate, name=strip.name, editor=EDITOR,
                   track=int(strip.channel), record_frame=start, item_id=strip.name)
    meta = parent_meta(strip)
    return Placement(clip=clip, frame_start=start, frames=end - start, scene=scene.name,
                     meta=meta.name if meta is not None else None)


def _retimed(strip: Any) -> bool:
    """Blender 4.x+ retiming keys other than the two it always has at the strip's ends."""
    keys = getattr(strip, "retiming_keys", None)
    if keys is None or len(keys) <= 2:
        return False
    return True


def free_channel_above(collection: Any, channel: int, start: int, end: int) -> int | None:
    """The first channel above `channel` with no strip in [start, end), or None."""
    busy = {}
    for strip in collection:
        busy.setdefault(int(strip.channel), []).append((int(strip.frame_final_start), int(strip.frame_final_end)))
    for candidate in range(channel + 1, MAX_CHANNEL + 1):
        if all(e <= start or s >= end for s, e in busy.get(candidate, [])):
            return candidate
    return None


def split_looks(text: str) -> list[str]:
    """The operator's "More looks" field: further prompts separated by '|' (Blender's text fields are one line)."""
    return [part.strip() for part in text.split("|") if part.strip()]


def strip_name(clip_name: str, result: HandoffResult, looks: int = 1) -> str:
    """'carphone TokenFlow' for one look; 'carphone TokenFlow 2: pencil sketch' for the second of several
    (Blender cuts a name at 63 bytes: the number comes before the prompt so it survives)."""
    name = f"{clip_name} TokenFlow"
    return name if looks <= 1 else f"{name} {result.variant + 1}: {result.prompt or ''}"


def place(scene: Any, placement: Placement, result: HandoffResult, looks: int = 1) -> Any:
    """Add a done result as an image or movie strip on the first free channel above the source, same frames
    (inside the source's meta strip when it has one). With several looks (`looks` prompts in one job)
    each is its own strip, named after its prompt; placed as they arrive, in prompt order, they stack
    upwards from the first free channel, the first prompt's nearest the source."""
    if result.state != ResultState.DONE:
        raise BlenderProblem(f"'{placement.clip.name}': {result.message or result.state}")
    if not result.output:
        raise BlenderProblem(f"The result of '{placement.clip.name}' names no file.")
    collection = container(scene.sequence_editor, placement.meta)
    source_channel = int(placement.clip.track or 1)
    start = placement.frame_start
    sequence = image_sequence(result)
    length = (sequence[2] - sequence[1] + 1) if sequence else placement.frames
    channel = free_channel_above(collection, source_channel, start, start + max(length, placement.frames))
    if channel is None:
        raise BlenderProblem(f"No free channel above '{placement.clip.name}' over frames "
                             f"{start}-{start + placement.frames - 1}; the result is at {result.output}.")
    name = strip_name(placement.clip.name, result, looks)
    if sequence:
        pattern, first, last = sequence
        files = [pattern % n for n in range(first, last + 1)]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise BlenderProblem(f"{len(missing)} of the result's images are missing, e.g. {missing[0]}.")
        strip = collection.new_image(name=name, filepath=files[0], channel=channel, frame_start=start)
        for path in files[1:]:
            strip.elements.append(os.path.basename(path))
    else:
        strip = collection.new_movie(name=name, filepath=result.output, channel=channel, frame_start=start)
    strip["tokenflow_prompt"] = result.prompt or ""
    strip["tokenflow_seed"] = -1 if result.seed is None else int(result.seed)
    strip["tokenflow_job"] = result.job_id or ""
    strip["tokenflow_variant"] = int(result.variant)
    strip["tokenflow_source"] = f"{placement.clip.media} [{placement.clip.first}:{placement.clip.last}]"
    return strip


class HandoffJob:
    """The handoff child in the project's environment; its result lines arrive on a queue.

    A thread reads the child's output so Blender's UI never waits on a pipe: the add-on's
    modal operator calls `poll()` from a timer. `echo` gets each of the child's log lines
    as it arrives (the add-on passes `print` in background mode, where no status bar
    shows them and the line naming an auto-started server's pid and log must reach the
    user).
    """

    def __init__(self, argv: Sequence[str], env: dict[str, str], request: HandoffRequest,
                 echo: Callable[[str], None] | None = None):
        self.request = request
        self.echo = echo
        self.log: list[str] = []
        self._queue: queue.Queue[HandoffResult | None] = queue.Queue()
        # `tokenflow handoff` as the installer recorded it for this environment
        self.process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, env=child_environment(env), universal_newlines=True)
        assert self.process.stdin is not None and self.process.stdout is not None  # both asked for as PIPE
        self.process.stdin.write(request.to_json())
        self.process.stdin.close()
        self.finished = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None  # asked for as PIPE
        for line in self.process.stdout:
            line = line.rstrip("\n")
            result = HandoffResult.from_line(line)
            if result is not None:  # None in the queue means the child has ended
                self._queue.put(result)
            elif line:
                self.log.append(line)
                if self.echo is not None:
                    self.echo(line)
        self.process.wait()
        self._queue.put(None)

    def poll(self) -> list[HandoffResult]:
        """Results that arrived since the last call; sets `finished` once the child has ended."""
        got = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return got
            if item is None:
                self.finished = True
            else:
                got.append(item)

    def results(self) -> Iterator[HandoffResult]:
        """Every result, blocking (for Blender in background mode, where no timer runs)."""
        while True:
            item = self._queue.get()
            if item is None:
                self.finished = True
                return
            yield item

    def cancel(self) -> None:
        """Stop the child; it cancels the jobs it queued."""
        if self.process.poll() is None:
            self.process.terminate()
