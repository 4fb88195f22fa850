"""One attempt at one job: decode, drive the engine, turn its events into stored events,
write the outputs, and end the job with exactly one of done / failed / cancelled (or
put it back in the queue when the server is shutting down).

Engine events become, in order: `progress`; `proxy` previews of keyframes during
denoising; then for each finished frame its small `proxy` and its full-resolution
`frame` (source frame numbering). A frame already recorded by an earlier attempt (the
server died mid-job) is written to the output again but not announced again, so every
frame reaches a subscriber exactly once. A job with several prompts (params.variants) has
one writer per prompt and announces every (variant, frame) exactly once.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bridge import media
from bridge.media.output_safety import OutputRefused, existing_outputs
from bridge.media.pipeline import FrameSinks
from bridge.wire import protocol as p
from bridge.wire.protocol import STAGE_ORDER, JobState, Stage
from server import batch_summary, output_files, upload_matte, upload_source
from server.disk import Reserve, is_disk_full
from server.engine_host import EngineHost, free_accelerator_memory
from server.journal import Blob, Journal
from server.proxies import PROXY_EXTENSIONS, encode_proxy
from server.resolved_job import ResolvedJob
from server.store import JobRecord
from tokenflow.errors import EngineError, OutOfMemory
from tokenflow.events import Cancelled, FrameReady, Preview, Progress

log = logging.getLogger("tokenflow.server")

OOM_HINT = (
    "Try a smaller working size (--size), fewer frames per batch (--batch-size), or a shorter --frames range."
)
HINTS = {
    "out_of_memory": OOM_HINT,
    "model_not_found": "Check the --model given to `tokenflow serve` (hub id, local folder or .safetensors file).",
    "unsupported_model": "Use a Stable Diffusion 1.x/2.x model.",
    "non_finite": "Try another --seed; if it persists, the model may need fp32 (--device cpu to check).",
    "invalid_input": "Check the input clip and the --frames range.",
    "media_error": "Check the input file and the output folder, then submit again.",
    "internal_error": "This is a bug; the server log has the details. The server keeps serving other jobs.",
}


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (OutOfMemory, MemoryError)) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    # torch's CPU allocator says "DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


OutputCheck = Callable[[ResolvedJob, tuple], None]  # (the job, outputs it may replace) -> raises OutputRefused
CLAIM = "output.json"  # in the job folder: where this job's output is being staged, and whether it is being placed


class RunAgain(Exception):
    """Raised by an engine whose worker was lost mid-job (a cluster node switched off): the
    job goes back to the front of the queue and runs again from the start elsewhere."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _cancellable(frames: Iterable[Any], should_cancel: Callable[[], bool]) -> Iterator[Any]:
    """Frames as the engine reads them, stopping at a cancel (the read/encode stage checks nothing else)."""
    for frame in frames:
        if should_cancel():
            raise Cancelled()
        yield frame


class JobRun:
    """`job` is the record after `store.start_attempt` (state running, attempts counted)."""

    def __init__(self, job: JobRecord, journal: Journal, engines: EngineHost,
                 should_cancel: Callable[[], bool], shutting_down: Callable[[], bool],
                 output_check: OutputCheck | None = None, reserve: Reserve | None = None,
                 may_write: Callable[[Path], bool] | None = None):
        self.job = job
        self.may_write = may_write  # where the batch summary may go (server/output_roots.py)
        self.output_check = output_check
        self.reserve = reserve
        self._claim_since = 0.0
        self.spec = job.spec
        self.journal = journal
        self.engines = engines
        self.should_cancel = should_cancel
        self.shutting_down = shutting_down
        self.first = self.spec.first
        self.started = time.monotonic()
        store = journal.store
        # (variant, frame) pairs announced by earlier attempts: each is announced once.
        self.announced_frames = store.sent_frames(job.id, p.Frame.TYPE)
        self.announced_proxies = store.sent_frames(job.id, p.Proxy.TYPE)
        self.writers: list[Any] = []  # one per prompt, in variant order (spec.outputs)
        self.sinks: FrameSinks | None = None  # the output and the store, each on its own thread
        self.ext = PROXY_EXTENSIONS.get(self.spec.proxy_format, "jpg")
        self._stage = -1  # index in STAGE_ORDER of the last progress event sent, and its step
        self._step = 0
        self._frames_done = 0  # full-resolution frames finished in this attempt, every prompt's
        self._count_lock = threading.Lock()
        self._decode_started: float | None = None

    def _emit(self, event: p.Body, **kw: Any) -> None:
        self.journal.append(self.job.id, event, **kw)

    def _end(self, event: p.Done | p.Failed | p.Cancelled, *, outputs: list | None = None,
             error: dict | None = None) -> JobState:
        """The terminal event; a batch that this job ends gets its summary written first.
        Returns the state the job ends in (the event's own type names it)."""
        state = JobState(event.TYPE)
        try:
            batch_summary.job_ending(self.journal.store, self.job.id, state, outputs, error, self.may_write)
        except Exception:  # the summary is a courtesy: it must never keep a job from ending
            log.exception("job %s: writing its batch summary failed", self.job.id)
        kw = {k: v for k, v in (("outputs", outputs), ("error", error)) if v is not None}
        self._emit(event, state=state, **kw)
        return state

    def _progress(self, stage: Stage, step: int, total: int, eta: float | None = None) -> None:
        """One progress event; the documented semantics hold here whatever the engine reports:
        stages only move forward, `step` never goes back within a stage and ends at `total`,
        `frames_done` counts finished full-resolution frames and never goes back."""
        index = STAGE_ORDER.index(stage)
        step = max(0, min(step, total))
        if index < self._stage or (index == self._stage and step < self._step):
            return
        self._stage, self._step = index, step
        self._emit(p.Progress(
            stage=stage, step=step, total=total, frames_done=self._frames_done,
            frames_total=self.spec.n_frames * len(self.spec.prompts),  # every prompt's frames are written
            elapsed_s=time.monotonic() - self.started, eta_s=eta,
        ))

    def _engine_progress(self, event: Progress) -> None:
        n = self.spec.n_frames
        if event.stage == Stage.EDIT:
            # The engine reports the step being worked on (0-based) and the frames done in it;
            # the wire counts completed steps, so the last one reads total/total.
            step = event.step + (1 if event.frames_done >= n else 0)
            self._progress(Stage.EDIT, step, event.total, event.eta_s)
        elif event.stage == Stage.DECODE:
            now = time.monotonic()
            if self._decode_started is None:
                self._decode_started = now
            per_frame = (now - self._decode_started) / max(1, event.step)
            self._progress(Stage.DECODE, event.step, event.total, per_frame * (event.total - event.step))
        elif event.stage in STAGE_ORDER:  # the engine's own stage names are the wire's
            self._progress(Stage(event.stage), event.step, event.total, event.eta_s)

    def run(self) -> JobState:
        """Returns the state the job ended in."""
        job_id = self.job.id
        spec = self.spec
        try:
            self._progress(Stage.START, 1, 1)
            if self.should_cancel():
                raise Cancelled()
            if not self.engines.loaded(spec.model):
                self._progress(Stage.LOAD, 0, 1)
            engine = self.engines.get(spec.model)
            self._progress(Stage.LOAD, 1, 1)
            info, source = self._source()
            overwrite = self._check_output()
            # preset None: a job stored before presets existed runs with the format its output implies.
            for output in spec.outputs:
                self.writers.append(media.open_writer(output, info, self.first, preset=spec.preset,
                                                      start_number=spec.start_number, overwrite=overwrite,
                                                      audio=spec.audio))
            self._claim(finalising=False)
            self.sinks = FrameSinks({**{_sink(v): functools.partial(self._write_output, v)
                                        for v in range(len(self.writers))}, "store": self._store_frame})
            frames = _cancellable(source, self.should_cancel)
            params = spec.edit_params()
            matte = upload_matte.job_matte(spec, params.matte, self.first) if params.matte else None
            stats = engine.edit(frames, spec.n_frames, params,
                                on_event=self._on_event, should_cancel=self.should_cancel, matte=matte)
            self.sinks.close()  # every frame written and stored, or the first failure raised
            self._progress(Stage.WRITE, 0, 1)
            self._claim(finalising=True)
            for writer in self.writers:
                writer.close()
            self._progress(Stage.WRITE, 1, 1, 0.0)
            by_prompt = [[str(path) for path in writer.outputs] for writer in self.writers]
            outputs = [path for each in by_prompt for path in each]
            # Sizes and checksums for downloads, hashed here so no request ever waits on it.
            files = [p.FileInfo(**f) for f in output_files.manifest(
                spec.output, outputs, self.journal.blob_path(self.job.id, output_files.IDENTITY))]
            return self._end(p.Done(
                outputs=outputs, frames=spec.n_frames, first_frame=self.first,
                elapsed_s=time.monotonic() - self.started, stats=_plain(stats.to_dict()), files=files,
                warnings=list(dict.fromkeys(w for writer in self.writers for w in writer.warnings)),
                variants=[p.VariantOutputs(prompt, each) for prompt, each in zip(spec.prompts, by_prompt)],
            ), outputs=outputs)
        except Cancelled:
            self._abort_writer()
            if self.shutting_down():
                self.journal.store.requeue(job_id)
                self._emit(p.Requeued(attempt=self.job.attempts + 1, reason="the server is shutting down"))
                return JobState.QUEUED
            return self._end(p.Cancelled(reason="cancelled by request"))
        except RunAgain as exc:  # the staging goes; the retry writes the output once, as after kill -9
            self._abort_writer()
            self.journal.store.requeue(job_id)
            self._emit(p.Requeued(attempt=self.job.attempts + 1, reason=exc.reason))
            return JobState.QUEUED
        except BaseException as exc:  # every failure ends the job; none may end the worker
            if is_disk_full(exc) and self.reserve is not None:
                self.reserve.release()  # room for the database to record the failure
            self._abort_writer()
            code, message, hint = _describe(exc, str(self.journal.data.root))
            if code == "internal_error":
                log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            if code == "out_of_memory":
                free_accelerator_memory()
            return self._end(p.Failed(code=code, message=message, hint=hint),
                             error={"code": code, "message": message, "hint": hint})

    def _source(self) -> tuple[media.ClipInfo, Iterator[Any]]:
        """The clip's facts and its frames first..last: a file, or an upload (server/upload_source.py)."""
        spec = self.spec
        if spec.upload is not None:
            folder = Path(spec.input)
            upload_source.touch(folder)
            info = upload_source.clip_info(upload_source.description(folder), folder)
            return info, upload_source.rgb_frames(folder, self.first, spec.last)
        return media.probe(spec.input), media.read_frames(spec.input, self.first, spec.last)

    # --- the output: checked again at write start, staged, recovered ---

    def _claim_path(self) -> Path:
        return self.journal.blob_path(self.job.id, CLAIM)

    def _check_output(self) -> bool:
        """Clean what a crashed attempt left, run the output policy again; returns `overwrite` for the writer.

        An earlier attempt that died while putting its output in place may have left
        some of it under final names: those files are this job's own, and it finishes
        them. Staging it left behind is removed (only the paths it recorded).
        """
        spec = self.spec
        own: tuple[str, ...] = ()
        try:
            claim = json.loads(self._claim_path().read_text())
        except (OSError, ValueError):
            claim = None
        if isinstance(claim, dict) and claim.get("output") == spec.output:
            for stale in claim.get("staging", []):
                path = Path(stale)
                if path.name.startswith(".") and "partial" in path.name:  # never anything but a staging name
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    elif os.path.lexists(path):
                        path.unlink()
            if claim.get("finalising"):
                # Only files written since this job's writer opened: a file put there later by
                # someone else with an older date (a restored backup) stays someone else's.
                since = float(claim.get("since", 0)) - 2.0  # file system clocks tick coarser
                own = tuple(str(path) for output in spec.outputs for path in existing_outputs(output, spec.preset)
                            if path.stat().st_mtime >= since)
        elif self._replaces_only_own_outputs():  # an attempt from before claims were recorded
            own = tuple(str(path) for output in spec.outputs for path in existing_outputs(output, spec.preset))
        if self.output_check is not None:
            self.output_check(spec, own)
        return spec.overwrite or bool(own)

    def _claim(self, finalising: bool) -> None:
        if not finalising:
            self._claim_since = time.time()  # the writer has just opened: what it writes is newer
        staging = [getattr(writer, name, None) for writer in self.writers for name in ("_staging", "_partial")]
        claim = {"output": self.spec.output, "staging": [str(path) for path in staging if path], "finalising": finalising,
                 "since": self._claim_since}
        path = self._claim_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        tmp.write_text(json.dumps(claim))
        os.replace(tmp, path)

    def _replaces_only_own_outputs(self) -> bool:
        """True when a retry may replace what an earlier attempt of this job finished.

        Submission refused outputs that already existed, so on a retry a file at the
        job's own output path made after the job was created is this job's (the server
        died between finishing the file and recording `done`); anything older is not.
        """
        if self.job.attempts <= 1:
            return False
        spec = self.spec
        number = self.first if spec.start_number is None else spec.start_number
        existing = [path for output in spec.outputs for path in media.writers.sequence_paths(
            media.parse_output_spec(output, spec.preset), number, spec.n_frames) if path.exists()]
        return bool(existing) and all(path.stat().st_mtime >= self.job.created for path in existing)

    def _abort_writer(self) -> None:
        if self.sinks is not None:
            self.sinks.abort()  # the writer is never aborted under a frame being written
        for writer in self.writers:
            try:
                writer.abort()
            except Exception:
                log.exception("aborting the output of job %s", self.job.id)

    def _on_event(self, event: Any) -> None:
        if isinstance(event, Progress):
            self._engine_progress(event)
        elif isinstance(event, Preview):
            for index, image in zip(event.frame_indices, event.images):
                frame = self.first + int(index)
                data, w, h = encode_proxy(image, max(image.shape[:2]), self.spec.proxy_format)
                name = f"previews/{_folder(event.variant)}a{self.job.attempts}_s{event.step:04d}_{frame:08d}.{self.ext}"
                self._emit(p.Proxy(kind="preview", frame=frame, step=event.step, width=w, height=h,
                                   format=self.spec.proxy_format, variant=event.variant), blob=Blob(name, data))
        elif isinstance(event, FrameReady):
            self._on_frame(event.variant, self.first + int(event.index), event.image, event.best_image)

    def _on_frame(self, variant: int, frame: int, image: Any, precise: Any = None) -> None:
        """On the engine's finisher thread: hand the frame to its prompt's output's and the store's threads."""
        assert self.sinks is not None
        full = image if precise is None else precise
        self.sinks.put(_sink(variant), full, full.nbytes)
        self.sinks.put("store", (variant, frame, image), image.nbytes)

    def _write_output(self, variant: int, full: Any) -> None:
        self.writers[variant].write(full)
        with self._count_lock:  # each prompt's writer has its own thread
            self._frames_done += 1

    def _store_frame(self, item: tuple[int, int, Any]) -> None:
        variant, frame, image = item
        key = (variant, frame)
        where = f"{_folder(variant)}{frame:08d}"  # variant 0 where one-prompt jobs have always kept theirs
        if key not in self.announced_proxies:
            data, w, h = encode_proxy(image, self.spec.proxy_size, self.spec.proxy_format)
            self._emit(p.Proxy(kind="frame", frame=frame, step=None, width=w, height=h,
                               format=self.spec.proxy_format, variant=variant),
                       blob=Blob(f"proxies/{where}.{self.ext}", data), frame=frame)
            self.announced_proxies.add(key)
        if key not in self.announced_frames:
            if self.spec.upload is not None:  # an RGBA upload gets its alpha back (docs/protocol.md)
                alpha = upload_source.alpha(Path(self.spec.input), frame)
                image = image if alpha is None else np.concatenate([image, alpha], axis=2)
            self._emit(p.Frame(frame=frame, shape=list(image.shape), dtype=str(image.dtype), variant=variant),
                       blob=Blob(f"frames/{where}.png", image), frame=frame)
            self.announced_frames.add(key)


def _sink(variant: int) -> str:
    """The FrameSinks key of a prompt's output writer."""
    return f"output{variant}"


def _folder(variant: int) -> str:
    """Where a prompt's stored pictures go inside frames/, proxies/, previews/: the job's own
    folder for the first prompt (as for one-prompt jobs), `v<N>/` for the others."""
    return f"v{variant}/" if variant else ""


DISK_FULL_HINT = ("Free some space there (`tokenflow jobs delete ID` removes what the server stored for a finished "
                  "job; `tokenflow serve --keep-days/--keep-gb` keep less), then submit the job again.")


def _describe(exc: BaseException, data_root: str = "") -> tuple[str, str, str]:
    """(code, message, hint) for a failed event."""
    if is_disk_full(exc):
        if isinstance(exc, media.MediaError):
            return "disk_full", f"The disk of the output folder is full: {exc}", DISK_FULL_HINT
        return "disk_full", f"The data folder {data_root} is full (no space left on its disk); the job stopped.", \
            DISK_FULL_HINT
    if isinstance(exc, OutputRefused):
        return exc.code, exc.message, exc.hint
    if is_out_of_memory(exc):
        if isinstance(exc, OutOfMemory):
            message = str(exc)
        elif "cuda" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError":
            message = f"The GPU ran out of memory ({exc})."
        else:
            message = f"The machine ran out of memory ({exc})."
        return "out_of_memory", message, OOM_HINT
    if isinstance(exc, EngineError):
        return exc.code, str(exc), exc.hint or HINTS.get(exc.code, "")
    if isinstance(exc, media.MediaError):
        return "media_error", str(exc), HINTS["media_error"]
    return "internal_error", f"{type(exc).__name__}: {exc}", HINTS["internal_error"]


def _plain(value: Any) -> Any:
    """Stats as JSON/msgpack-safe values (tuples to lists, numpy scalars to numbers)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value
