"""How a handoff's clips become server jobs, and their ends become result lines.

Shared by `tokenflow handoff` (cli/handoff.py, the editor launchers' child process) and
the panel when it holds a handoff (ui/model/session.py): both name outputs and build
job specs the same way, so an editor gets the same files whichever route it took.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

from bridge.editors.handoff import ClipRef, HandoffError, HandoffRequest, HandoffResult, ResultState
from bridge.wire import protocol as p
from bridge.wire.client import EventKind

# Suffix of the default output (ProRes 422 HQ .mov: every editor reads it without a transcode,
# including DaVinci Resolve's free edition on Linux, which decodes no H.264).
DEFAULT_MOVIE_SUFFIX = ".mov"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".exr")


def _slug(text: str, limit: int = 32) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].rstrip("-") or "edit"


def output_for(clip: ClipRef, request: HandoffRequest) -> str:
    """Where this clip's result goes: a new movie, or a new folder holding an image sequence.

    Beside the source media unless the request names `output_dir`; never an existing file
    or folder (a counter is added), so nothing the user has is overwritten.
    """
    folder = Path(request.output_dir).expanduser() if request.output_dir else Path(clip.media).parent
    base = f"{Path(clip.media).stem}_{clip.first}-{clip.last}_{_slug(request.prompt or '')}"
    suffix = _suffix_for(request.preset)
    for n in range(1, 10_000):
        name = base if n == 1 else f"{base}_{n}"
        if suffix in IMAGE_SUFFIXES:
            candidate = folder / name
            if not candidate.exists():
                return str(candidate / f"{name}_%06d{suffix}")
        else:
            candidate = folder / f"{name}{suffix}"
            if not candidate.exists():
                return str(candidate)
    raise HandoffError(f"output_dir: no free output name for {base} in {folder}")


def _suffix_for(preset: str | None) -> str:
    """The file suffix an export preset writes (`tokenflow formats`; aliases like png, mov, exr work)."""
    if not preset:
        return DEFAULT_MOVIE_SUFFIX
    from bridge.media.presets import get_preset

    try:
        return get_preset(preset).extension
    except ValueError as exc:
        raise HandoffError(f"preset: {exc}") from None


def job_spec(clip: ClipRef, request: HandoffRequest, output: str) -> p.JobSpec:
    params: dict = dict(request.params)
    params["prompt"] = request.prompt
    if request.negative_prompt is not None:
        params["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        params["seed"] = request.seed
    return p.JobSpec(input=clip.media, params=params, frames=f"{clip.first}:{clip.last}", output=output,
                     preset=request.preset, client_token=uuid.uuid4().hex)


def result_of(index: int, event, output: str, request: HandoffRequest) -> HandoffResult:
    """The HandoffResult for a job's terminal event."""
    b = event.body
    common: dict[str, Any] = dict(clip_index=index, job_id=event.job, prompt=request.prompt, seed=request.seed)
    if event.kind is EventKind.DONE:
        if Path(output).suffix.lower() in IMAGE_SUFFIXES and "%" in Path(output).name:
            return HandoffResult(state=ResultState.DONE, output=output, first_number=b.first_frame,
                                 last_number=b.first_frame + b.frames - 1, **common)
        return HandoffResult(state=ResultState.DONE, output=b.outputs[0] if b.outputs else output, **common)
    if event.kind is EventKind.FAILED:
        return HandoffResult(state=ResultState.FAILED, message=f"{b.message} {b.hint}".strip(), **common)
    return HandoffResult(state=ResultState.CANCELLED, message=f"The job was cancelled ({b.reason}).", **common)
