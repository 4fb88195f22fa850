"""Batch files for the render queue: JSON, CSV, or an OpenTimelineIO timeline.

Each becomes a list of `BatchJob`s (one per row, or one per clip on the chosen track),
checked as a whole: every problem in the file is reported with where it is (row 3,
or clip 'shot_010' on track 'V1') before anything is queued. What only the server
can check (the clip exists on its disk, the range lies inside it, the destination is
allowed) is checked next by `tokenflow queue add`, with a dry-run submit per job.

File formats (docs/queue.md has examples):
- JSON: a list of job objects, or {"defaults": {...}, "jobs": [...]}.
- CSV: a header row naming the same keys; an empty cell means "not set".
- OTIO (anything OpenTimelineIO reads): one job per clip on a video track; the range
  is the clip's source range counted from the media's first frame (its
  available_range start, i.e. its start timecode), the input its media reference.
  Per-clip settings can sit in the clip's metadata under "tokenflow".
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from bridge.wire import naming
from bridge.wire.edit_params import matte_options_problem
from bridge.wire.lora_spec import parse_lora_list

# key -> (EditParams field or JobSpec field, type). Aliases an editor would write map to one key.
PARAM_KEYS: dict[str, tuple[str, type]] = {
    "prompt": ("prompt", str),
    "negative": ("negative_prompt", str),
    "inversion_prompt": ("inversion_prompt", str),
    "seed": ("seed", int),
    "steps": ("steps", int),
    "guidance": ("guidance", float),
    "kf_interval": ("kf_interval", int),
    "size": ("short_side", int),
    "method": ("method", str),
    "batch_size": ("batch_size", int),
    "matte": ("matte", str),  # a path (relative: from the batch file's folder) or "alpha"
    "matte_invert": ("matte_invert", bool),
    "matte_feather": ("matte_feather", float),
    "lora": ("loras", list),  # a JSON list, or one text "path:scale, path:scale" (a CSV cell)
    # More prompts edited with `prompt` in one pass, one output each: a JSON list, or one text
    # "snow | oil paint" (a CSV cell; prompts hold commas, so " | " separates them).
    "variants": ("variants", list),
}
# How one text cell becomes a list, per list key.
_SPLIT: dict[str, Callable[[str], list[str]]] = {
    "lora": lambda text: list(parse_lora_list(text)),
    "variants": lambda text: [part.strip() for part in text.split("|") if part.strip()],
}
_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off", ""}
JOB_KEYS: dict[str, type] = {
    "input": str, "range": str, "first": int, "last": int, "preset": str, "destination": str,
    "name": str, "template": str, "model": str, "priority": int, "start_number": int,
}
ALIASES = {"loras": "lora", "frames": "range", "negative_prompt": "negative", "short_side": "size", "clip": "name",
           "format": "preset", "name_template": "template", "output_dir": "destination"}
KNOWN = sorted({*PARAM_KEYS, *JOB_KEYS, *ALIASES})
_RANGE = re.compile(r"^\s*(\d+)\s*[:-]\s*(\d+)\s*$")


@dataclass(frozen=True)
class BatchJob:
    where: str  # "row 3", "clip 2 'shot_010' on track 'V1'": how messages name it
    row: int  # 1-based place in the file
    input: str  # absolute path (on the server's machine)
    frames: str | None  # "FIRST:LAST" or None (whole clip)
    params: dict[str, Any]  # EditParams fields
    destination: str | None = None
    name: str | None = None
    template: str | None = None
    preset: str | None = None
    model: str | None = None
    priority: int = 0
    start_number: int | None = None


@dataclass
class BatchError(Exception):
    """Everything wrong with a batch file, each problem with where it is."""

    source: str
    problems: list[tuple[str, str]] = field(default_factory=list)
    # The rows that did read: `queue add` still checks them on the server, so one run lists
    # every problem in the file (a bad row 2 must not hide a missing clip in row 5).
    readable: list[BatchJob] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source}: {len(self.problems)} problem(s); nothing was queued."]
        lines += [f"  {where}: {message}" for where, message in self.problems]
        return "\n".join(lines)


def _convert(key: str, value: Any, tp: type) -> Any:
    if tp is list:
        if isinstance(value, str):
            return _SPLIT[key](value)
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            example = "a | b" if key == "variants" else "a:0.5, b"
            raise ValueError(f"{key} must be a list of texts or one text \"{example}\", not {json.dumps(value)}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be text, not {json.dumps(value)}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(f"{key} must be true or false, not {json.dumps(value)}")
    if isinstance(value, bool):
        raise ValueError(f"{key} must be a number, not {json.dumps(value)}")
    if isinstance(value, str):
        try:
            value = float(value) if tp is float else int(value.strip())
        except ValueError:
            kind = "a whole number" if tp is int else "a number"
            raise ValueError(f"{key} must be {kind}, not {value!r}") from None
    if tp is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{key} must be a whole number, not {value}")
        value = int(value)
    if not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number, not {json.dumps(value)}")
    return tp(value)


def _resolve_input(text: str, base: Path) -> str:
    """A path or file:// URL; relative paths count from the batch file's folder."""
    if text.startswith("file:"):
        parsed = urlparse(text)
        text = unquote(parsed.path)
    path = Path(text).expanduser()
    return str(path if path.is_absolute() else (base / path).absolute())


def job_from_mapping(values: dict[str, Any], where: str, row: int, base: Path,
                     defaults: dict[str, Any]) -> BatchJob:
    """One job from keys as in a JSON object or CSV row (defaults first); ValueError names the problem."""
    merged: dict[str, Any] = {}
    for source in (defaults, values):
        for key, value in source.items():
            key = ALIASES.get(key.strip().lower(), key.strip().lower())
            if key not in PARAM_KEYS and key not in JOB_KEYS:
                raise ValueError(f"unknown key {key!r}; known keys: {', '.join(KNOWN)}")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue  # an empty CSV cell: not set
            merged[key] = value
    params: dict[str, Any] = {}
    job: dict[str, Any] = {}
    for key, value in merged.items():
        if key in PARAM_KEYS:
            name, tp = PARAM_KEYS[key]
            params[name] = _convert(key, value, tp)
        else:
            job[key] = _convert(key, value, JOB_KEYS[key])
    if not job.get("input", "").strip():
        raise ValueError("no input: give the source clip's path in 'input'")
    if params.get("matte", "alpha") != "alpha":
        params["matte"] = _resolve_input(params["matte"], base)
    if not params.get("prompt", "").strip():
        raise ValueError("no prompt: give one in 'prompt' (or --prompt for every job)")
    wrong = matte_options_problem(params)
    if wrong:
        raise ValueError(wrong)
    frames = None
    if "range" in job:
        match = _RANGE.match(job["range"])
        if match is None:
            raise ValueError(f"range {job['range']!r} is not FIRST:LAST (source frames from 0, both included), "
                             "e.g. 100:219")
        frames = (int(match.group(1)), int(match.group(2)))
    if "first" in job or "last" in job:
        if frames is not None:
            raise ValueError("give either 'range' or 'first'/'last', not both")
        if "first" not in job or "last" not in job:
            raise ValueError("'first' and 'last' go together")
        frames = (job["first"], job["last"])
    if frames is not None:
        if frames[0] < 0 or frames[1] < frames[0]:
            raise ValueError(f"range {frames[0]}:{frames[1]} is empty or negative: FIRST must be 0 or more and "
                             "not after LAST")
    if "template" in job:
        naming.check_template(job["template"])
    if "preset" in job:
        from bridge.media.presets import get_preset  # standard library only

        get_preset(job["preset"])  # ValueError listing the presets
    destination = job.get("destination")
    if destination is not None:
        destination = _resolve_input(destination, base)
    return BatchJob(
        where=where, row=row, input=_resolve_input(job["input"], base),
        frames=None if frames is None else f"{frames[0]}:{frames[1]}", params=params,
        destination=destination, name=job.get("name"), template=job.get("template"), preset=job.get("preset"),
        model=job.get("model"), priority=job.get("priority", 0), start_number=job.get("start_number"),
    )


def _rows(items: list[tuple[str, int, Callable[[], dict]]], source: str, base: Path,
          defaults: dict[str, Any]) -> list[BatchJob]:
    jobs, problems = [], []
    for where, row, values in items:
        try:
            jobs.append(job_from_mapping(values(), where, row, base, defaults))
        except (ValueError, naming.TemplateError) as exc:
            problems.append((where, str(exc)))
    if problems:
        raise BatchError(source, problems, readable=jobs)
    if not jobs:
        raise BatchError(source, [("file", "it holds no jobs")])
    return jobs


def load_json(path: Path, defaults: dict[str, Any]) -> list[BatchJob]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BatchError(str(path), [(f"line {exc.lineno}", f"not valid JSON ({exc.msg})")]) from None
    file_defaults: dict[str, Any] = {}
    if isinstance(data, dict):
        file_defaults = data.get("defaults") or {}
        extra = set(data) - {"defaults", "jobs"}
        if extra or not isinstance(file_defaults, dict):
            raise BatchError(str(path), [("file", "a JSON batch is a list of jobs or {\"defaults\": {...}, "
                                                  "\"jobs\": [...]}")])
        data = data.get("jobs")
    if not isinstance(data, list):
        raise BatchError(str(path), [("file", "a JSON batch is a list of jobs or {\"defaults\": {...}, "
                                              "\"jobs\": [...]}")])

    def item(obj: Any) -> Callable[[], dict]:
        def values() -> dict:
            if not isinstance(obj, dict):
                raise ValueError("a job must be an object of keys and values")
            return obj
        return values

    return _rows([(f"job {i}", i, item(obj)) for i, obj in enumerate(data, 1)], str(path), path.parent,
                 {**defaults, **file_defaults})


def load_csv(path: Path, defaults: dict[str, Any]) -> list[BatchJob]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise BatchError(str(path), [("file", "it is empty: the first row names the columns")])
        records = list(reader)
    items = []
    # Rows are counted after the header; a row's line is i + 1 when no cell spans lines.
    for i, record in enumerate(records, 1):
        def values(record=record) -> dict:
            if None in record:
                raise ValueError("the row has more cells than the header has columns")
            return {k: v for k, v in record.items() if k is not None}
        items.append((f"row {i} (line {i + 1})", i, values))
    return _rows(items, str(path), path.parent, defaults)


# --- OpenTimelineIO ---


def _otio_track(timeline: Any, track: str | None, source: str):
    import opentimelineio as otio

    tracks = list(timeline.video_tracks()) if hasattr(timeline, "video_tracks") else []
    if not tracks:
        raise BatchError(source, [("timeline", "it has no video track")])
    if track is None:
        with_clips = [t for t in tracks if any(isinstance(c, otio.schema.Clip) for c in t)]
        return (with_clips or tracks)[0], 1 + tracks.index((with_clips or tracks)[0])
    if track.isdigit():
        index = int(track)
        if not 1 <= index <= len(tracks):
            raise BatchError(source, [("--track", f"there is no video track {index}: the timeline has "
                                                  f"{len(tracks)} (counted from 1)")])
        return tracks[index - 1], index
    named = [t for t in tracks if t.name == track]
    if not named:
        names = ", ".join(repr(t.name) for t in tracks)
        raise BatchError(source, [("--track", f"there is no video track named {track!r}; the tracks are {names}")])
    return named[0], 1 + tracks.index(named[0])


def _media_start_frames(ref: Any, rate: float, local_path: str) -> int:
    """The media's first frame on its own timecode, in frames at `rate`: its available_range start,
    or (when the timeline does not say) the start timecode read from the file if it is here."""
    available = getattr(ref, "available_range", None)
    if available is not None:
        return round(available.start_time.rescaled_to(rate).value)
    if os.path.isfile(local_path):
        from bridge import media

        info = media.probe(local_path)
        if info.start_timecode:
            try:
                return media.timecode_to_frames(info.start_timecode, info.frame_rate)
            except ValueError:
                return 0
    return 0


def load_otio(path: Path, defaults: dict[str, Any], track: str | None = None) -> list[BatchJob]:
    import opentimelineio as otio

    source = str(path)
    try:
        timeline = otio.adapters.read_from_file(str(path))
    except Exception as exc:  # OTIO raises its own and adapter-specific errors
        raise BatchError(source, [("file", f"OpenTimelineIO cannot read it ({type(exc).__name__}: {exc})")]) from None
    if isinstance(timeline, otio.schema.SerializableCollection):
        timelines = list(timeline.find_children(descended_from_type=otio.schema.Timeline))
        if not timelines:
            raise BatchError(source, [("file", "it holds no timeline")])
        timeline = timelines[0]
    chosen, index = _otio_track(timeline, track, source)
    label = f"track {index} {chosen.name!r}" if chosen.name else f"track {index}"
    items = []
    clips = [c for c in chosen if isinstance(c, otio.schema.Clip)]
    for n, clip in enumerate(clips, 1):
        where = f"clip {n} {clip.name!r} on {label}"

        def values(clip=clip) -> dict:
            ref = clip.media_reference
            if isinstance(ref, otio.schema.MissingReference) or ref is None:
                raise ValueError("the clip has no media (a missing reference): relink it in the editor")
            if not isinstance(ref, otio.schema.ExternalReference) or not ref.target_url:
                raise ValueError(f"the clip's media is a {type(ref).__name__}: only movie files are supported")
            local = _resolve_input(ref.target_url, path.parent)
            source_range = clip.source_range or clip.available_range()
            rate = (ref.available_range.start_time.rate if ref.available_range is not None
                    else source_range.start_time.rate)
            start = round(source_range.start_time.rescaled_to(rate).value) - _media_start_frames(ref, rate, local)
            count = round(source_range.duration.rescaled_to(rate).value)
            if count < 1:
                raise ValueError("the clip is empty (zero duration)")
            if start < 0:
                raise ValueError(f"the clip starts {-start} frames before its media's first frame")
            meta = clip.metadata.get("tokenflow", {}) if hasattr(clip.metadata, "get") else {}
            values = {"input": local, "range": f"{start}:{start + count - 1}", "name": clip.name or Path(local).stem}
            values.update(dict(meta) if hasattr(meta, "items") else {})
            return values

        items.append((where, n, values))
    if not clips:
        raise BatchError(source, [(label, "it has no clips")])
    return _rows(items, source, path.parent, defaults)


def load(path: str | os.PathLike, defaults: dict[str, Any] | None = None, track: str | None = None) -> list[BatchJob]:
    """The jobs of a batch file, by its extension: .json, .csv, else OpenTimelineIO."""
    path = Path(path).expanduser().absolute()
    defaults = {k: v for k, v in (defaults or {}).items() if v is not None}
    if not path.is_file():
        raise BatchError(str(path), [("file", "it does not exist")])
    suffix = path.suffix.lower()
    if suffix == ".json":
        return load_json(path, defaults)
    if suffix == ".csv":
        return load_csv(path, defaults)
    return load_otio(path, defaults, track)
