"""The end-of-batch summary: which jobs succeeded (with their outputs), which failed and why.

One format for both sides: the server writes it as JSON into the batch's destination
folder(s) when the batch's last job ends, so it is there in the morning whether or
not a client waited; `tokenflow queue wait` prints it and, with --download, writes it
beside the downloaded files with their local paths. Standard library only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bridge.wire.lifecycle import TERMINAL_STATES, JobState


def filename(batch: str) -> str:
    return f"tokenflow-batch-{batch}.json"


def job_entry(job: Mapping[str, Any]) -> dict:
    """A job (JobInfo fields as a mapping) as the summary lists it."""
    entry = {
        "job": job["id"], "row": job.get("row"), "clip": job.get("name"), "input": job.get("input"),
        "frames": job.get("frames"), "prompt": job.get("prompt"), "state": job["state"],
        "outputs": list(job.get("outputs") or []),
    }
    if job.get("variants"):  # several prompts in one job: the prompts after `prompt`, one output each
        entry["variants"] = list(job["variants"])
    error = job.get("error")
    if job["state"] == JobState.FAILED and error:
        entry["error"] = {"code": error.get("code"), "message": error.get("message"), "hint": error.get("hint")}
    return entry


def build(batch: str, jobs: Iterable[Mapping[str, Any]]) -> dict:
    entries = [job_entry(j) for j in jobs]
    counts = {state: sum(e["state"] == state for e in entries) for state in TERMINAL_STATES}
    return {
        "batch": batch,
        "finished": all(e["state"] in TERMINAL_STATES for e in entries),
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "succeeded": counts[JobState.DONE], "failed": counts[JobState.FAILED], "cancelled": counts[JobState.CANCELLED],
        "jobs": entries,
    }


def text(summary: Mapping[str, Any]) -> str:
    """The summary for a terminal: successes with their outputs, then failures with the reason."""
    jobs = summary["jobs"]
    lines = [f"Batch {summary['batch']}: {summary['succeeded']} of {len(jobs)} jobs succeeded"
             + (f", {summary['failed']} failed" if summary["failed"] else "")
             + (f", {summary['cancelled']} cancelled" if summary["cancelled"] else "") + "."]
    for e in jobs:
        label = f"  {e['job']}  {e.get('clip') or Path(e.get('input') or '').name} [{e.get('frames') or 'all'}]"
        if e["state"] == JobState.DONE:
            lines.append(f"{label}  done")
            units = output_units(e["outputs"])
            prompts = [e.get("prompt"), *e.get("variants", [])]
            for n, unit in enumerate(units):
                # An image sequence: its folder, not every frame. Several prompts: whose each output is.
                shown = f"{Path(unit[0]).parent}{os.sep} ({len(unit)} files)" if len(unit) > 1 else unit[0]
                label = f"{prompts[n]!r}: " if len(prompts) > 1 and len(units) == len(prompts) else ""
                lines.append(f"      {label}{shown}")
        elif e["state"] == JobState.FAILED:
            err = e.get("error") or {}
            lines.append(f"{label}  FAILED ({err.get('code')}): {err.get('message')}")
            if err.get("hint"):
                lines.append(f"      {err['hint']}")
        else:
            lines.append(f"{label}  {e['state']}")
    return "\n".join(lines)


IMAGE_SUFFIXES = frozenset((".png", ".tif", ".tiff", ".exr", ".dpx", ".jpg", ".jpeg"))


def output_units(outputs: list[str]) -> list[list[str]]:
    """A job's output files as outputs: each movie alone, an image sequence's frames (consecutive
    image files in one folder) together; in the order written (a job with several prompts writes
    its prompts' outputs in variant order)."""
    units: list[list[str]] = []
    for path in outputs:
        last = units[-1][-1] if units else None
        if (last is not None and Path(path).suffix.lower() in IMAGE_SUFFIXES
                and Path(last).suffix.lower() in IMAGE_SUFFIXES and Path(last).parent == Path(path).parent):
            units[-1].append(path)
        else:
            units.append([path])
    return units


def write(summary: Mapping[str, Any], folder: str | os.PathLike) -> Path:
    """Write (or rewrite, after a retry) the batch's summary file atomically; returns its path."""
    path = Path(folder) / filename(summary["batch"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)
    return path
