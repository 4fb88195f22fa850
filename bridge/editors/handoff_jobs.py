"""How a handoff's clips become server jobs, and their ends become result lines.

Shared by `tokenflow handoff` (cli/handoff.py, the editor launchers' child process) and
the panel when it holds a handoff (ui/model/session.py): both name outputs and build
job specs the same way, so an editor gets the same files whichever route it took.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bridge.editors.handoff import ClipRef, HandoffError, HandoffRequest, HandoffResult, ResultState
from bridge.wire import protocol as p
from bridge.wire.client import EventKind
from bridge.wire.naming import prompt_outputs

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
    or folder (a counter is added), so nothing the user has is overwritten. With several
    prompts this is the job's `output`, from which the server names one output per prompt
    (`outputs_for`): the name leaves the prompt out, each prompt's own name adds it.
    """
    folder = Path(request.output_dir).expanduser() if request.output_dir else Path(clip.media).parent
    several = len(request.prompts) > 1
    base = f"{Path(clip.media).stem}_{clip.first}-{clip.last}"
    base = base if several else f"{base}_{_slug(request.prompt or '')}"
    suffix = _suffix_for(request.preset)
    for n in range(1, 10_000):
        name = base if n == 1 else f"{base}_{n}"
        if suffix in IMAGE_SUFFIXES:  # a new folder: every prompt's sequence goes inside it
            candidate = folder / name
            if not candidate.exists():
                return str(candidate / f"{name}_%06d{suffix}")
        else:
            candidate = folder / f"{name}{suffix}"
            if not any(Path(o).exists() for o in outputs_for(str(candidate), request)):
                return str(candidate)
    raise HandoffError(f"output_dir: no free output name for {base} in {folder}")


def outputs_for(output: str, request: HandoffRequest) -> list[str]:
    """Each prompt's output of a job whose `output` is this, in variant order (as the server names them)."""
    return prompt_outputs(output, request.prompts or [""])


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
    if request.variants:
        params["variants"] = list(request.variants)
    if request.negative_prompt is not None:
        params["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        params["seed"] = request.seed
    return p.JobSpec(input=clip.media, params=params, frames=f"{clip.first}:{clip.last}", output=output,
                     preset=request.preset, client_token=uuid.uuid4().hex)


def per_prompt(index: int, request: HandoffRequest, state: str, outputs: list[str] | None = None,
               **fields: Any) -> list[HandoffResult]:
    """One result line per prompt of the request (one for a one-prompt request), each naming its prompt
    and, given `outputs` (variant order), its own output."""
    prompts = request.prompts or [request.prompt]
    return [HandoffResult(clip_index=index, state=state, prompt=prompt, seed=request.seed, variant=v,
                          output=outputs[v] if outputs else None, **fields) for v, prompt in enumerate(prompts)]


def result_of(index: int, event, outputs: list[str], request: HandoffRequest) -> list[HandoffResult]:
    """The HandoffResults for a job's terminal event, one per prompt; `outputs` as `outputs_for` names them."""
    b = event.body
    if event.kind is EventKind.DONE:
        written = [v.outputs for v in b.variants] if len(b.variants) == len(outputs) else [[]] * len(outputs)
        if len(outputs) == 1 and not written[0]:  # a server that predates done.variants
            written = [list(b.outputs)]
        results = []
        for result, output, files in zip(per_prompt(index, request, ResultState.DONE, job_id=event.job), outputs,
                                         written):
            if Path(output).suffix.lower() in IMAGE_SUFFIXES and "%" in Path(output).name:
                result = replace(result, output=output, first_number=b.first_frame,
                                 last_number=b.first_frame + b.frames - 1)
            else:
                result = replace(result, output=files[0] if files else output)
            results.append(result)
        return results
    if event.kind is EventKind.FAILED:
        return per_prompt(index, request, ResultState.FAILED, job_id=event.job,
                          message=f"{b.message} {b.hint}".strip())
    return per_prompt(index, request, ResultState.CANCELLED, job_id=event.job,
                      message=f"The job was cancelled ({b.reason}).")
