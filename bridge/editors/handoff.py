"""The handoff between an editor's launcher and this project's environment.

An editor's own Python (DaVinci Resolve's, Blender's) cannot be assumed to have pyzmq,
msgpack or Qt, so its launcher uses only the standard library: it starts a child
process in the project's environment, writes one `HandoffRequest` as JSON to the
child's stdin (or names a JSON file on its command line), and reads `HandoffResult`
lines back from the child's stdout, each prefixed with `RESULT_PREFIX` so that log
lines on the same stream are ignored. This module is standard library only too, so the
launcher can carry a copy of it.

Frames are source frames of the media file, counted from 0 at its first picture,
inclusive at both ends: what `tokenflow edit --frames FIRST:LAST` takes.

Several looks of a clip: a request's `variants` are more prompts besides `prompt`, edited
in the same job (the protocol's `params.variants`); each result line then says which
prompt it is about (`variant`: 0 = `prompt`, v = `variants[v-1]`). Both fields are left
out of the JSON when unused, so a one-prompt request or result reads as in version 1.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, Sequence

HANDOFF_VERSION = 1
RESULT_PREFIX = "TOKENFLOW-RESULT "
# open the panel with the clips loaded / submit at once with the given prompt / ask for the prompt in a
# small dialog shown by the project's environment (so the editor's own process runs no GUI code), then submit
MODES = ("panel", "submit", "ask")


class ResultState:
    """What a result line says of a clip. A plain class, not an enum.StrEnum: the editors'
    own Pythons (Resolve takes any 3.7+) may predate it, and these are the line's text."""

    QUEUED = "queued"  # accepted by the server; `job_id` and `output` say which job and where
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


RESULT_STATES = (ResultState.QUEUED, ResultState.DONE, ResultState.FAILED, ResultState.CANCELLED)


def child_environment(extra: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child in the project's environment: `base` (default: ours) with `extra` on top.

    An editor's own Python settings (PYTHONHOME) must not leak into the project's
    interpreter; a PYTHONPATH in `extra` goes before the inherited one.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONHOME", None)
    for key, value in extra.items():
        env[key] = value + (os.pathsep + env[key] if key == "PYTHONPATH" and env.get(key) else "")
    return env


class HandoffError(ValueError):
    """A handoff message is malformed; the message names the field."""


def split_prompts(prompts: str | Sequence[str] | None) -> tuple[str | None, list[str]]:
    """(prompt, variants) from one prompt or a list of them (the first is `prompt`); blank ones are dropped."""
    if prompts is None or isinstance(prompts, str):
        return prompts, []
    given = [text.strip() for text in prompts if text and text.strip()]
    return (given[0] if given else None), given[1:]


def _without_defaults(record: dict[str, Any], **defaults: Any) -> dict[str, Any]:
    """`record` less the named fields that hold their default: a reader that predates them reads the rest."""
    return {k: v for k, v in record.items() if not (k in defaults and v == defaults[k])}


@dataclass(frozen=True)
class ClipRef:
    """One clip as the editor sees it, and where its result goes back."""

    media: str  # absolute path of the source media file
    first: int  # first source frame (0 = the media's first picture), inclusive
    last: int  # last source frame, inclusive
    frame_rate: str  # exact rational, e.g. "30000/1001" or "25"
    start_timecode: str | None = None  # the media's own start timecode, e.g. "01:00:00:00"
    name: str = ""  # the clip's name in the editor
    editor: str = ""  # "resolve", "blender", "otio", ...
    track: int | None = None  # the source clip's video track (1-based, as the editor counts)
    record_frame: int | None = None  # timeline frame where the clip's first edited frame sits
    item_id: str | None = None  # the editor's own id for the clip, to find it again

    def __post_init__(self) -> None:
        if not self.media:
            raise HandoffError("clip.media: the clip has no media file")
        if not (isinstance(self.first, int) and isinstance(self.last, int)) or self.first < 0 or self.last < self.first:
            raise HandoffError(f"clip.first/last: {self.first}:{self.last} is not a range of source frames")


@dataclass(frozen=True)
class HandoffRequest:
    clips: list[ClipRef]
    mode: str = "panel"
    prompt: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    preset: str | None = None  # export preset name (see `tokenflow formats`); None = the default
    output_dir: str | None = None  # where results go; None = beside the source media
    params: dict[str, Any] = field(default_factory=dict)  # further edit parameters by name
    version: int = HANDOFF_VERSION
    # More prompts edited in the same job as `prompt` (several looks of each clip); one result per prompt.
    variants: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.version != HANDOFF_VERSION:
            raise HandoffError(f"version: handoff version {self.version} is not {HANDOFF_VERSION}; "
                               "reinstall the editor integration with `tokenflow install`")
        if self.mode not in MODES:
            raise HandoffError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if not self.clips:
            raise HandoffError("clips: no clip to edit")
        if self.mode == "submit" and not (self.prompt or "").strip():
            raise HandoffError("prompt: submitting directly needs a prompt")
        if not isinstance(self.variants, list) or not all(isinstance(v, str) and v.strip() for v in self.variants):
            raise HandoffError("variants: expected a list of non-empty prompts")
        if self.variants and not (self.prompt or "").strip():
            raise HandoffError("variants: more prompts need a first one in `prompt`")

    @property
    def prompts(self) -> list[str]:
        """Every prompt of the request in variant order: [prompt, *variants] ([] when it has none)."""
        return [self.prompt, *self.variants] if self.prompt else []

    def to_json(self) -> str:
        return json.dumps(_without_defaults(asdict(self), variants=[]))

    @classmethod
    def from_json(cls, text: str) -> HandoffRequest:
        raw = _object(text, "request")
        clips = raw.pop("clips", None)
        if not isinstance(clips, list):
            raise HandoffError("clips: expected a list of clips")
        return cls(clips=[ClipRef(**_known(ClipRef, _as_dict(c, "clip"))) for c in clips], **_known(cls, raw))


@dataclass(frozen=True)
class HandoffResult:
    """What happened to one clip of the request; one JSON line per change of state."""

    clip_index: int  # index into HandoffRequest.clips
    state: str  # one of RESULT_STATES
    job_id: str | None = None
    output: str | None = None  # movie file, or image-sequence pattern with a printf field (%06d)
    first_number: int | None = None  # number of the first image of a sequence
    last_number: int | None = None
    prompt: str | None = None
    seed: int | None = None
    message: str = ""  # for failed/cancelled: what happened and what to do
    variant: int = 0  # which of the request's prompts (0 = `prompt`, v = `variants[v-1]`); `prompt` names it

    def __post_init__(self) -> None:
        if self.state not in RESULT_STATES:
            raise HandoffError(f"state: {self.state!r} is not one of {', '.join(RESULT_STATES)}")
        if not isinstance(self.variant, int) or self.variant < 0:
            raise HandoffError(f"variant: {self.variant!r} is not a prompt's index (0, 1, ...)")

    def to_line(self) -> str:
        return RESULT_PREFIX + json.dumps(_without_defaults(asdict(self), variant=0))

    @classmethod
    def from_line(cls, line: str) -> HandoffResult | None:
        """The result on this line, or None for a line that is not a result (a log line)."""
        if not line.startswith(RESULT_PREFIX):
            return None
        return cls(**_known(cls, _object(line[len(RESULT_PREFIX):], "result")))


IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".exr", ".dpx", ".jpg", ".jpeg")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[A-Za-z]+)$")


def image_sequence(result: HandoffResult) -> tuple | None:
    """(printf pattern, first number, last number) when the result is an image sequence, else None (a movie).

    A result may name the sequence by its pattern and numbers, or (as a job's output list
    does) by its first image file: then the numbers are those of the unbroken run of
    files beside it.
    """
    output = result.output or ""
    if result.first_number is not None and result.last_number is not None and "%" in output:
        return output, int(result.first_number), int(result.last_number)
    folder, name = os.path.split(output)
    match = _NUMBERED.match(name)
    if match is None or match.group(3).lower() not in IMAGE_SUFFIXES or not os.path.isfile(output):
        return None
    head, digits, tail = match.groups()
    pattern = os.path.join(folder, "{}%0{}d{}".format(head.replace("%", "%%"), len(digits), tail))
    first = last = int(digits)
    while first > 0 and os.path.isfile(pattern % (first - 1)):
        first -= 1
    while os.path.isfile(pattern % (last + 1)):
        last += 1
    return pattern, first, last


def _object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HandoffError(f"{what}: not JSON ({exc})") from None
    return _as_dict(value, what)


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HandoffError(f"{what}: expected a JSON object")
    return dict(value)


def _known(cls: type, raw: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise HandoffError(f"{cls.__name__}: unknown field(s) {', '.join(unknown)}")
    return raw
