"""The panel's state in one place, and the actions a user takes on it.

`PanelSession` owns the observable models (connection, clip, playback, jobs, history,
presets, viewer) and the client layer (a `PanelLink`: the real `ServerLink` unless a test
passes another), and turns user actions (submit,
cancel, retry, reorder, reload a version, export) into requests and server events into
model changes. It has no widgets: the tests drive it directly, and the window only
binds to it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bridge.command import Launcher
from bridge.editors.handoff import HandoffError, HandoffRequest, HandoffResult, ResultState
from bridge.editors.handoff_jobs import output_for
from bridge.wire import protocol as p
from bridge.wire.client import CurveKeys, EventKind, JobEvent, absolute
from bridge.wire.local import can_start_here
from ui.images import thumbnail_png
from ui.link import Failure, PanelLink, ServerLink
from ui.model.clip import ClipModel
from ui.model.connection import ConnectionModel, LinkState
from ui.model.export import ExportFormat, ExportThread
from ui.model.frames import SourceFrames, ThumbnailsModel
from ui.model.history import HistoryModel, HistoryStore, Version, entry_key, split_key
from ui.model.jobs import JobsModel
from ui.model.local_server import LocalServer
from ui.model.matte import MatteModel
from ui.model.playback import PlaybackModel
from ui.model.presets import EditForm, PresetStore
from ui.model.viewer import CompareMode, ViewerModel
from ui.paths import PanelDirs


@dataclass(frozen=True)
class _Pending:
    """A submit on its way: what it was for, until the server gives it a job id."""

    spec: p.JobSpec
    clip: str
    first: int
    last: int
    handoff_index: int | None
    created: float


def print_result(line: str) -> None:
    print(line, flush=True)


class PanelSession(QObject):
    notice = Signal(str, str)  # level ("info" | "error"), plain words
    form_loaded = Signal(object)  # EditForm: a preset or a reloaded version's parameters
    export_progress = Signal(int, int)
    export_finished = Signal(list, str)  # paths, error

    def __init__(self, endpoint: str, dirs: PanelDirs, *, launcher: Launcher, keys: CurveKeys | None = None,
                 output_dir: str | None = None, result_sink: Callable[[str], None] = print_result,
                 link: PanelLink | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self.endpoint = endpoint
        self.keys = keys
        self.dirs = dirs.create()
        self.output_dir = output_dir
        self.result_sink = result_sink
        self.connection = ConnectionModel(endpoint, self)
        self.clip = ClipModel(self)
        self.playback = PlaybackModel(self.clip, self)
        self.frames = SourceFrames(self.clip, parent=self)
        self.thumbs = ThumbnailsModel(self.clip, parent=self)
        self.jobs = JobsModel(self)
        self.history = HistoryModel(HistoryStore(self.dirs.history), self)
        self.presets = PresetStore(self.dirs.presets, self)
        self.viewer = ViewerModel(self)
        self.matte = MatteModel(self.clip, self)
        self.server = LocalServer(endpoint, launcher, self)
        self.link: PanelLink = link if link is not None else ServerLink(endpoint, keys, self)
        self.handoff: HandoffRequest | None = None
        self._handoff_waiting = False
        self._closed = False
        self._pending: dict[str, _Pending] = {}
        self._handoff_jobs: dict[str, int] = {}  # job -> clip index in the handoff request
        self._asked_status: set[str] = set()
        self._export: ExportThread | None = None
        self.last_form = EditForm()

        self.link.connected.connect(self._connected)
        self.link.unreachable.connect(self.connection.on_unreachable)
        self.link.jobs_listed.connect(self._listed)
        self.link.job_info.connect(self._info)
        self.link.submitted.connect(self._submitted)
        self.link.failed.connect(self._failed)
        self.link.job_event.connect(self._event)
        self.link.watch_ended.connect(self._watch_ended)
        self.link.deleted.connect(self._deleted)
        self.link.queue_state.connect(self.jobs.set_queue_state)
        self.link.fetch_ended.connect(self._fetch_ended)
        self.server.exited.connect(self.connection.on_server_exited)
        self.clip.error.connect(lambda m: self.notice.emit("error", m))
        self.frames.error.connect(lambda m: self.notice.emit("error", m))
        self.clip.clip_changed.connect(self._clip_changed)
        if self.presets.problem:
            self.notice.emit("error", self.presets.problem)

    # --- life ---

    def start(self) -> None:
        self.link.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Events the threads queued before they stopped must not reach a closed history.
        self.link.blockSignals(True)
        self.playback.stop()
        if self._export is not None:
            self._export.stop()
            self._export = None
        self.thumbs.stop()
        self.link.stop()
        self.server.stop()
        self.history.store.close()

    def start_local_server(self) -> None:
        if not can_start_here(self.endpoint):
            self.notice.emit("error", f"{self.endpoint} is not on this machine: start the server there.")
            return
        self.connection.on_starting()
        self.server.start()

    # --- clips ---

    def open_clip(self, path: str | Path) -> bool:
        return self.clip.open(path) is not None

    def load_handoff(self, request: HandoffRequest) -> None:
        """Clips (and their ranges) from an editor's launcher; mode 'submit' queues them at once."""
        self.handoff = request
        for index, message in self.clip.open_handoff(request.clips).items():
            # The launcher waits for an answer per clip: a clip the panel cannot read gets one now.
            self.result_sink(HandoffResult(clip_index=index, state=ResultState.FAILED, message=message).to_line())
        form = dataclasses.replace(
            EditForm.from_params(request.params, request.params.get("model")),
            prompt=request.prompt or "", negative_prompt=request.negative_prompt or "",
            seed=request.seed if request.seed is not None else 0, variants=tuple(request.variants))
        self.last_form = form
        self.form_loaded.emit(form)
        self._handoff_waiting = request.mode == "submit"
        if self.connection.connected:
            self._submit_handoff()

    def _submit_handoff(self) -> None:
        """Mode 'submit': queue every handed-over clip once a server answers."""
        if not self._handoff_waiting or self.handoff is None:
            return
        self._handoff_waiting = False
        for clip in list(self.clip.clips):
            if clip.handoff_index is not None:
                ref = self.handoff.clips[clip.handoff_index]
                self._submit_clip(clip.key, ref.first, ref.last, self.last_form, clip.handoff_index)

    def _clip_changed(self) -> None:
        current = self.clip.current
        latest = None
        if current is not None:
            versions = self.history.versions(current.key)
            latest = versions[0] if versions else None
        self.viewer.show_job(latest.job_id if latest else None, latest.variant if latest else 0)
        if latest is not None:
            self.viewer.set_mode("source")
            self._ensure_pictures(latest.job_id)

    # --- submit ---

    def _output_for(self, clip: str, first: int, last: int, token: str, handoff_index: int | None,
                    prompt: str, variants: list[str]) -> str | None:
        if handoff_index is not None and self.handoff is not None:
            # The editor's contract (the same as `tokenflow handoff`): the request's
            # output_dir, else beside the source media; in its preset; never an existing name.
            # The prompts are the form's (the user may have changed them), so a several-prompt
            # job gets a base name without a prompt and the server adds one per prompt.
            ref = dataclasses.replace(self.handoff.clips[handoff_index], first=first, last=last)
            return output_for(ref, dataclasses.replace(self.handoff, prompt=prompt, variants=variants))
        if not self.output_dir:
            return None  # the server's own outputs folder
        name = f"{Path(clip).stem}_tokenflow_{first}-{last}_{token[:8]}.mp4"
        return absolute(Path(self.output_dir) / name)

    def submit(self, form: EditForm) -> str | None:
        """Queue the current clip's marked range with these parameters; returns the submit's token."""
        self.last_form = form
        current = self.clip.current
        if current is None:
            self.notice.emit("error", "No clip is open: open one with File > Open (Ctrl+O) or drop it on the viewer.")
            return None
        problem = form.problem()
        if problem:
            self.notice.emit("error", problem)
            return None
        first, last = self.clip.range
        return self._submit_clip(current.key, first, last, form, current.handoff_index,
                                 params={**form.params(), **self.matte.params()})

    def _submit_clip(self, clip: str, first: int, last: int, form: EditForm, handoff_index: int | None,
                     params: dict | None = None, model: str | None = None) -> str | None:
        if not self.connection.connected:
            self.notice.emit("error", "Not connected to a server, so nothing was queued. " + self.connection.message)
            return None
        if self.connection.model_problem is not None and (model or form.model or None) in (None, self._default_model):
            # The server would accept the job and fail it at once: say so now, with what to do.
            self.notice.emit("error", "Nothing was queued: " + self.connection.summary)
            return None
        token = uuid.uuid4().hex
        params = params or form.params()
        try:
            output = self._output_for(clip, first, last, token, handoff_index, str(params.get("prompt", "")),
                                      [str(v) for v in params.get("variants", ())])
        except HandoffError as exc:
            self.notice.emit("error", f"Nothing was queued: {exc}")
            return None
        spec = p.JobSpec(input=clip, params=params, frames=f"{first}:{last}", output=output,
                         model=model if model is not None else (form.model or None), client_token=token)
        if handoff_index is not None and self.handoff is not None and self.handoff.preset:
            spec = dataclasses.replace(spec, preset=self.handoff.preset)
        self._pending[token] = _Pending(spec, clip, first, last, handoff_index, time.time())
        self.link.submit(spec)
        return token

    def _submitted(self, token: str, accepted: JobEvent) -> None:
        pending = self._pending.pop(token, None)
        if pending is None:
            return
        job = accepted.job
        self.jobs.add_submitted(accepted, pending.spec, pending.created)
        self.history.record(Version(
            job_id=job, clip=pending.clip, first=pending.first, last=pending.last,
            prompt=str(pending.spec.params.get("prompt", "")), params=dict(pending.spec.params),
            model=pending.spec.model, endpoint=self.endpoint, state=p.JobState.QUEUED, created=pending.created))
        self.link.watch(job, 2)
        if pending.handoff_index is not None:
            self._handoff_jobs[job] = pending.handoff_index
            self._report(job, p.JobState.QUEUED)
        if self.clip.current is not None and self.clip.current.key == pending.clip:
            self.viewer.show_job(job)
        self.notice.emit("info", f"Queued job {job} (frames {pending.first}-{pending.last}).")

    def _failed(self, failure: Failure) -> None:
        if failure.token is not None:
            self._pending.pop(failure.token, None)
        verb = {"submit": "Submitting", "cancel": "Cancelling", "reorder": "Moving", "status": "Asking about"}
        what = verb.get(failure.action, failure.action)
        target = f" job {failure.job}" if failure.job else ""
        if failure.action == "status" and failure.job:
            return  # the reconcile's question about a job the server no longer has: handled below
        self.notice.emit("error", f"{what}{target} did not work: {failure.message}")

    # --- server traffic ---

    def _connected(self, welcome: p.Welcome) -> None:
        self.connection.on_connected(welcome)
        self._submit_handoff()

    def _listed(self, infos: list[p.JobInfo]) -> None:
        if not self.connection.connected:
            return
        # Jobs this panel made (its history) follow along; others show in the queue only.
        mine = {v.job_id for v in self.history.store.unfinished()}
        self.jobs.apply_list(infos)
        missing = self.history.reconcile(infos)
        for job in missing:
            if job not in self._asked_status:
                self._asked_status.add(job)
                self.link.status(job)
        for info in infos:
            if info.id in mine and not self.link.watching(info.id) and info.state not in p.TERMINAL_STATES:
                self.link.watch(info.id, 1)

    def _info(self, info: p.JobInfo) -> None:
        self.jobs.apply_info(info)
        self.history.set_state(info.id, info.state, list(info.outputs) or None,
                               "" if info.state not in p.TERMINAL_STATES else None)
        self.history.set_outputs_from_listing(info)
        view = self.jobs.get(info.id)
        if info.state not in p.TERMINAL_STATES and self.history.get(info.id) is not None \
                and not self.link.watching(info.id):
            # A retried job: follow its new attempt from the first event not seen yet.
            self.link.watch(info.id, view.last_seq + 1 if view and view.last_seq else 1)

    def _event(self, event: JobEvent, image) -> None:
        view = self.jobs.apply_event(event, image)
        if event.kind is EventKind.REQUEUED:
            self.history.set_state(event.job, p.JobState.QUEUED, message="")
        if image is not None and isinstance(event.body, (p.Frame, p.Proxy)):
            variant = event.body.variant
            entry = self.history.get(entry_key(event.job, variant))
            if entry is not None and entry.thumbnail is None and (
                    isinstance(event.body, p.Frame) or event.body.kind == "frame"):
                self.history.set_thumbnail(event.job, thumbnail_png(image), variant)
        if event.terminal:
            if view.variant_outputs:
                self.history.set_variant_outputs(event.job, view.variant_outputs)
            self.history.set_state(event.job, view.state, view.outputs, view.message)
            self._report(event.job, view.state)
            if event.kind is EventKind.FAILED:
                self.notice.emit("error", f"Job {event.job} failed: {view.message}")

    def _watch_ended(self, job: str, error: str) -> None:
        if error:
            self.notice.emit("error", f"Lost track of job {job}: {error}")

    def _fetch_ended(self, job: str, error: str) -> None:
        if error:
            self.notice.emit("error", f"The frames of job {job} could not be fetched: {error}")

    def _report(self, job: str, state: str) -> None:
        """Tell an editor's launcher (on stdout) what became of a clip it handed over."""
        index = self._handoff_jobs.get(job)
        if index is None:
            return
        view = self.jobs.get(job)
        version = self.history.get(job)
        prompts: list[str | None] = list(view.prompts) if view else [version.prompt if version else None]
        # One line per prompt, as `tokenflow handoff` writes them: the launcher places each look.
        for variant, prompt in enumerate(prompts):
            entry = self.history.get(entry_key(job, variant))
            files = (view.variant_outputs.get(variant) if view and view.variant_outputs else None) \
                or (view.outputs if view and variant == 0 else None) or (entry.outputs if entry else None)
            output = files[0] if files else None
            first = last = None
            if output and "%" in output and version is not None:
                first, last = version.first, version.last
            done = state == p.JobState.DONE
            result = HandoffResult(
                clip_index=index, state=state, job_id=job, output=output if done else None,
                first_number=first if done else None, last_number=last if done else None,
                prompt=prompt,
                seed=version.params.get("seed") if version else None,
                message=(view.message if view and state in (p.JobState.FAILED, p.JobState.CANCELLED) else ""),
                variant=variant)
            self.result_sink(result.to_line())
        if state in p.TERMINAL_STATES:
            self._handoff_jobs.pop(job, None)

    # --- queue actions ---

    def cancel(self, job: str) -> None:
        self.link.cancel(job)

    def cancel_current(self) -> None:
        """The always-visible cancel: the version on screen, if it is still working."""
        job = self.viewer.job
        if not job:  # nothing on screen: nothing to cancel
            return
        view = self.jobs.get(job)
        if view is not None and not view.terminal:
            self.cancel(job)

    def move(self, job: str, delta: int) -> None:
        """Move a queued job up (delta < 0) or down the queue."""
        order = self.jobs.queue_order()
        if job not in order:
            self.notice.emit("error", "Only queued jobs can be moved; this one is not waiting in the queue.")
            return
        position = max(0, min(len(order) - 1, order.index(job) + delta))
        self.link.reorder(job, position)

    def retry(self, job: str) -> None:
        """Queue a failed or cancelled job again on the server (same job, same output name)."""
        view = self.jobs.get(job)
        if view is not None and view.state not in p.RETRYABLE_STATES:
            self.notice.emit("error", "Only a failed or cancelled job can be retried; use Make again in the "
                             "history for another version.")
            return
        self.link.retry(job)

    def pause_queue(self, paused: bool) -> None:
        self.link.pause_queue(paused)

    def make_again(self, job: str) -> str | None:
        """Submit the same edit again (same clip, range and parameters) as a new job, a new version.
        `job` may name one prompt of a several-prompt job (a history entry key): that prompt alone."""
        version = self.history.get(job)
        if version is None:
            job = split_key(job)[0]
            view = self.jobs.get(job)
            if view is None or view.first_frame is None or view.last_frame is None:
                self.notice.emit("error", "This job was not made by this panel, so its parameters are not known; "
                                 "retry it with `tokenflow submit`.")
                return None
            return self._submit_clip(view.input, view.first_frame, view.last_frame, EditForm(prompt=view.prompt),
                                     None, {"prompt": view.prompt})
        return self._submit_clip(version.clip, version.first, version.last, EditForm(), None,
                                 version.variant_params if version.count > 1 else version.params, version.model)

    def remove(self, job: str) -> None:
        """Take a job that is not running off the queue: the server forgets it and frees what it
        stored; its output files stay, and so does its entry in the history."""
        view = self.jobs.get(job)
        if view is not None and view.state == p.JobState.RUNNING:
            self.notice.emit("error", "This job is running: cancel it first, then remove it.")
            return
        self.jobs.hide(job)
        self.link.delete(job)

    def _deleted(self, job: str) -> None:
        version = self.history.get(job)
        self.history.set_state(job, version.state if version is not None else p.JobState.CANCELLED,
                               message="Removed from the server's queue; its output files are kept.")

    # --- history ---

    def reload(self, key: str) -> None:
        """Bring a version back: its clip, range and parameters in the form, its frames in the viewer.
        One prompt of a several-prompt job (an entry key) comes back as a one-prompt edit, on screen."""
        version = self.history.get(key)
        if version is None:
            return
        job = version.job_id
        opened = self.clip.open(version.clip)
        if opened is None:
            return
        self.clip.set_marks(version.first, version.last)
        form = EditForm.from_params(version.variant_params, version.model)
        self.last_form = form
        self.form_loaded.emit(form)
        self.viewer.show_job(job, version.variant)
        if self.viewer.mode is CompareMode.SOURCE:
            self.viewer.set_mode(CompareMode.RESULT)
        self._ensure_pictures(job)

    def _ensure_pictures(self, job: str) -> None:
        """Fetch a finished job's stored frames, every prompt's, unless they are here already."""
        view = self.jobs.get(job)
        version = self.history.get(job)
        state = view.state if view else (version.state if version else "")
        count = len(view.prompts) if view and view.variants else (version.count if version else 1)
        if state == p.JobState.DONE and self.connection.connected:
            for variant in range(count):
                if view is None or not view.pictures_of(variant).full:
                    self.link.fetch_frames(job, variant)

    # --- export ---

    @property
    def _default_model(self) -> str | None:
        welcome = self.connection.welcome
        return welcome.default_model if welcome is not None else None

    def export_folder(self, source: str) -> Path:
        """Where an export goes unless the user picks another place: the panel's --output-dir
        (the folder the user named for results), else beside the source."""
        return Path(self.output_dir) if self.output_dir else Path(source).parent

    def export(self, key: str, fmt: ExportFormat, target: Path) -> bool:
        """Write a finished version (one prompt of it, for an entry key of a several-prompt job)."""
        job, variant = split_key(key)
        version = self.history.get(key)
        view = self.jobs.get(job)
        # The history knows a version is done even before the server's list has been read.
        if not ((view is not None and view.state == p.JobState.DONE)
                or (version is not None and version.state == p.JobState.DONE)):
            self.notice.emit("error", "Only a finished version can be exported: wait for it to be done.")
            return False
        if self._export is not None:
            self.notice.emit("error", "An export is already running: wait for it to finish.")
            return False
        if version is not None:
            source, first, last = version.clip, version.first, version.last
        else:
            assert view is not None, "the done check above passes without a version only through the view"
            source, first, last = view.input, view.first_frame or 0, view.last_frame or 0
        self._export = ExportThread(self.endpoint, self.keys, job, source, first, last, fmt, target, variant=variant)
        self._export.progress.connect(self.export_progress)
        self._export.finished_export.connect(self._export_done)
        self._export.start()
        return True

    def _export_done(self, paths: list, error: str) -> None:
        if self._export is not None:
            self._export.wait()
            self._export = None
        if error:
            self.notice.emit("error", f"The export did not work: {error}")
        else:
            where = Path(paths[0]).parent if paths else ""
            names = ", ".join(Path(path).name for path in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            self.notice.emit("info", f"Exported to {where}: {names}")
        self.export_finished.emit(paths, error)

    @property
    def connection_state(self) -> LinkState:
        return self.connection.state
