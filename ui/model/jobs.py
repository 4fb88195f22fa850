"""The server's jobs as the panel shows them: state, progress, and the pictures that arrived."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from bridge.display import format_duration
from bridge.wire import protocol as p
from bridge.wire.client import EventKind, JobEvent
from bridge.wire.protocol import JobState, Stage

STAGE_WORDS: dict[str, str] = {
    Stage.START: "Starting",
    Stage.LOAD: "Loading the model",
    Stage.ENCODE: "Encoding frames",
    Stage.INVERSION: "Analysing the source (inversion)",
    Stage.EDIT: "Editing",
    Stage.DECODE: "Decoding frames",
    Stage.WRITE: "Writing the output",
}
STATE_WORDS: dict[str, str] = {state: state.value.capitalize() for state in JobState}


def parse_frames(frames: str | None) -> tuple[int | None, int | None]:
    if not frames or ":" not in frames:
        return None, None
    a, _, b = frames.partition(":")
    return (int(a) if a.strip() else None), (int(b) if b.strip() else None)


@dataclass
class Pictures:
    """What arrived of one prompt's result, by source frame."""

    previews: dict[int, QImage] = field(default_factory=dict)  # keyframe previews
    proxies: dict[int, QImage] = field(default_factory=dict)
    full: dict[int, QImage] = field(default_factory=dict)  # full-resolution frames (display size)

    def best(self, frame: int) -> tuple[QImage | None, str]:
        """The full frame, else its proxy, else the nearest keyframe preview."""
        if frame in self.full:
            return self.full[frame], "frame"
        if frame in self.proxies:
            return self.proxies[frame], "proxy"
        if self.previews:
            nearest = min(self.previews, key=lambda k: (abs(k - frame), k))
            return self.previews[nearest], "preview"
        return None, ""

    def clear(self) -> None:
        self.previews.clear()
        self.proxies.clear()
        self.full.clear()


@dataclass
class JobView:
    id: str
    state: str = JobState.QUEUED  # a JobState (the wire's string, as the server sent it)
    prompt: str = ""
    input: str = ""
    frames: str | None = None
    created: float = 0.0
    position: int | None = None
    priority: int = 0
    progress: dict[str, Any] | None = None  # the last progress event's fields
    message: str = ""  # failed / cancelled: what happened and what to do
    outputs: list[str] = field(default_factory=list)
    last_seq: int = 0
    attempts: int = 0
    variants: list[str] = field(default_factory=list)  # the extra prompts (params.variants), in order
    # The pictures of each prompt of the job, by variant index (0: the prompt, v: variants[v-1]).
    pictures: dict[int, Pictures] = field(default_factory=dict)
    variant_outputs: dict[int, list[str]] = field(default_factory=dict)  # done: each prompt's files
    # The furthest the bar has been in this attempt: what the user sees never runs backwards.
    shown_fraction: float = 0.0

    @property
    def terminal(self) -> bool:
        return self.state in p.TERMINAL_STATES

    @property
    def first_frame(self) -> int | None:
        return parse_frames(self.frames)[0]

    @property
    def last_frame(self) -> int | None:
        return parse_frames(self.frames)[1]

    @property
    def frames_total(self) -> int | None:
        first, last = parse_frames(self.frames)
        if first is None or last is None:
            return (self.progress or {}).get("frames_total") or None
        return last - first + 1

    @property
    def fraction(self) -> float:
        """0..1 for a progress bar: never backwards within an attempt, full only when done."""
        if self.state == JobState.DONE:
            return 1.0
        return self.shown_fraction

    def _job_fraction(self) -> float:
        # The server's ETA covers the whole job (all stages), so elapsed / (elapsed + ETA)
        # is the one fraction that moves steadily from start to end. Before the first ETA
        # only a stage's own count is known (reading 8/8 frames is not 100% of the job), so
        # the bar waits at zero.
        pr = self.progress or {}
        elapsed, eta = pr.get("elapsed_s") or 0.0, pr.get("eta_s")
        if eta is not None and elapsed + eta > 0:
            return min(1.0, elapsed / (elapsed + eta))
        return 0.0

    @property
    def status_text(self) -> str:
        """Plain words for the state: 'Editing 3/10 · frames 2/8 · ETA 12s'."""
        if self.state == JobState.QUEUED:
            return STATE_WORDS[JobState.QUEUED] + (f" (#{self.position + 1})" if self.position is not None else "")
        if self.state != JobState.RUNNING:
            word = STATE_WORDS.get(self.state, self.state)
            return f"{word}: {self.message}" if self.message and self.state != JobState.DONE else word
        pr = self.progress or {}
        stage: str = pr.get("stage", Stage.START)
        parts = [STAGE_WORDS.get(stage, stage.capitalize())]
        if pr.get("total"):
            step = pr.get("step", 0)
            if stage == Stage.EDIT:  # the wire counts completed steps: say which one is being worked on
                step = min(step + 1, pr["total"])
            parts[0] += f" {step}/{pr['total']}"
        if pr.get("frames_total"):
            parts.append(f"frames {pr.get('frames_done', 0)}/{pr['frames_total']}")
        if pr.get("eta_s") is not None:
            parts.append(f"ETA {format_duration(pr['eta_s'])}")
        return " · ".join(parts)

    @property
    def prompts(self) -> list[str]:
        """Every prompt of the job in variant order: [prompt, *variants]."""
        return [self.prompt, *self.variants]

    @property
    def prompt_text(self) -> str:
        """The prompt as a row shows it: with several, how many first (a long prompt is cut at its end)."""
        return f"{len(self.prompts)} prompts: {self.prompt}" if self.variants else self.prompt

    def pictures_of(self, variant: int = 0) -> Pictures:
        got = self.pictures.get(variant)
        if got is None:
            got = self.pictures[variant] = Pictures()
        return got

    # The first prompt's pictures, as a one-prompt job has them.
    @property
    def previews(self) -> dict[int, QImage]:
        return self.pictures_of(0).previews

    @property
    def proxies(self) -> dict[int, QImage]:
        return self.pictures_of(0).proxies

    @property
    def full(self) -> dict[int, QImage]:
        return self.pictures_of(0).full

    def best_image(self, frame: int, variant: int = 0) -> tuple[QImage | None, str]:
        """What to show for a source frame of one prompt's result: the full frame, else its proxy,
        else the nearest keyframe preview."""
        return self.pictures_of(variant).best(frame)


class JobsModel(QObject):
    """Jobs by id, in queue order; pictures kept for the jobs this panel follows."""

    changed = Signal()  # the set or order of jobs changed
    queue_changed = Signal()  # the queue was paused or resumed
    job_changed = Signal(str)
    image_arrived = Signal(str, str, int, int)  # job, "preview" | "proxy" | "frame", source frame, variant
    finished = Signal(str, str)  # job, terminal state

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.jobs: dict[str, JobView] = {}
        self.hidden: set[str] = set()  # removed from the list by the user (kept on the server and in the history)
        self.paused: bool | None = None  # None: not known (or a server without pause)

    def set_queue_state(self, state: p.QueueState) -> None:
        if state.paused != self.paused:
            self.paused = state.paused
            self.queue_changed.emit()

    def get(self, job: str) -> JobView | None:
        return self.jobs.get(job)

    def ordered(self) -> list[JobView]:
        """Running first, then the queue in the order it will run, then the rest newest first."""
        jobs = [j for j in self.jobs.values() if j.id not in self.hidden]
        running = [j for j in jobs if j.state == JobState.RUNNING]
        queued = sorted((j for j in jobs if j.state == JobState.QUEUED),
                        key=lambda j: (j.position if j.position is not None else 1 << 30, j.created))
        ended = sorted((j for j in jobs if j.terminal), key=lambda j: -j.created)
        return running + queued + ended

    def queue_order(self) -> list[str]:
        return [j.id for j in self.ordered() if j.state == JobState.QUEUED]

    def _ensure(self, job: str) -> JobView:
        view = self.jobs.get(job)
        if view is None:
            view = self.jobs[job] = JobView(job)
        return view

    def apply_info(self, info: p.JobInfo, emit: bool = True) -> bool:
        """Take the server's word for a job; True when something visible changed."""
        view = self.jobs.get(info.id)
        new = view is None
        view = self._ensure(info.id)
        before = (view.state, view.position, view.progress, view.message, tuple(view.outputs), view.priority)
        was_terminal = view.terminal
        view.prompt, view.input, view.frames, view.created = info.prompt, info.input, info.frames, info.created
        view.variants = list(info.variants or view.variants)
        view.priority = info.priority
        view.position = info.position
        if not (was_terminal and info.state not in p.TERMINAL_STATES) or info.last_seq > view.last_seq:
            # A stale list never un-finishes a job; one with events after its end (a retry) is running again.
            view.state = info.state
        view.last_seq = max(view.last_seq, info.last_seq)
        if info.progress:
            view.progress = dict(info.progress)
        if info.outputs:
            view.outputs = list(info.outputs)
        if info.error:
            view.message = " ".join(str(info.error.get(k, "")) for k in ("message", "hint")).strip()
        after = (view.state, view.position, view.progress, view.message, tuple(view.outputs), view.priority)
        changed = new or before != after
        if emit and changed:
            self.job_changed.emit(info.id)
            if not was_terminal and view.terminal:
                self.finished.emit(info.id, view.state)
        return changed

    def apply_list(self, infos: list[p.JobInfo]) -> None:
        order_before = [j.id for j in self.ordered()]
        for info in infos:
            self.apply_info(info)
        if [j.id for j in self.ordered()] != order_before:
            self.changed.emit()

    def add_submitted(self, event: JobEvent, spec: p.JobSpec, created: float) -> JobView:
        view = self._ensure(event.job)
        view.prompt = str(spec.params.get("prompt", ""))
        view.variants = [str(v) for v in spec.params.get("variants", ())]
        view.input, view.frames, view.created, view.priority = spec.input, spec.frames, created, spec.priority
        self.apply_event(event, None)
        self.changed.emit()
        return view

    def apply_event(self, event: JobEvent, image: QImage | None) -> JobView:
        """Fold one event of a job's stream into its view; returns that view (made if it was new)."""
        view = self._ensure(event.job)
        was_terminal = view.terminal
        view.last_seq = max(view.last_seq, event.seq)
        b = event.body
        kind = event.kind
        # The body's type is the event's kind (JobEvent.of); dispatching on it gives typed fields.
        if isinstance(b, p.Accepted):
            if not view.terminal and view.state != JobState.RUNNING:
                view.state, view.position = b.state, b.position
        elif isinstance(b, p.Requeued):
            view.state, view.position, view.message = JobState.QUEUED, None, ""
            view.attempts = max(view.attempts, b.attempt)
            view.shown_fraction = 0.0  # a new attempt starts from the beginning
        elif isinstance(b, p.Progress):
            if not view.terminal:
                view.state, view.position = JobState.RUNNING, None
            view.progress = {f: getattr(b, f) for f in ("stage", "step", "total", "frames_done", "frames_total",
                                                        "elapsed_s", "eta_s")}
            view.shown_fraction = max(view.shown_fraction, view._job_fraction())
        elif isinstance(b, p.Proxy):
            if image is not None:
                pictures = view.pictures_of(b.variant)
                (pictures.previews if b.kind == "preview" else pictures.proxies)[b.frame] = image
                self.image_arrived.emit(event.job, "preview" if b.kind == "preview" else "proxy", b.frame, b.variant)
        elif isinstance(b, p.Frame):
            if image is not None:
                view.pictures_of(b.variant).full[b.frame] = image
                self.image_arrived.emit(event.job, "frame", b.frame, b.variant)
        elif isinstance(b, p.Done):
            view.state, view.outputs, view.position = JobState.DONE, list(b.outputs), None
            view.variant_outputs = {v: list(entry.outputs) for v, entry in enumerate(b.variants)}
        elif isinstance(b, p.Failed):
            view.state, view.position = JobState.FAILED, None
            view.message = f"{b.message} {b.hint}".strip()
        elif isinstance(b, p.Cancelled):
            view.state, view.position = JobState.CANCELLED, None
            view.message = b.reason
        if kind not in (EventKind.PROXY, EventKind.FRAME):
            self.job_changed.emit(event.job)
        if kind is EventKind.REQUEUED:
            self.changed.emit()
        if not was_terminal and view.terminal:
            self.finished.emit(event.job, view.state)
            self.changed.emit()
        return view

    def hide(self, job: str) -> None:
        self.hidden.add(job)
        self.changed.emit()

    def drop_pictures(self, keep: set[str]) -> None:
        """Free the pictures of jobs not in `keep` (they can be fetched again)."""
        for view in self.jobs.values():
            if view.id not in keep:
                for pictures in view.pictures.values():
                    pictures.clear()
