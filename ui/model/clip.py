"""The clip being edited: what it is, where the playhead is, the in and out marks."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from bridge import media
from bridge.editors.handoff import ClipRef


@dataclass(frozen=True)
class OpenClip:
    """One clip the panel knows: the media file, its facts, and where it came from."""

    info: media.ClipInfo
    handoff_index: int | None = None  # index into the editor's handoff request, if it came from one
    name: str = ""

    @property
    def path(self) -> Path:
        return self.info.path

    @property
    def key(self) -> str:
        """What the history files versions under: the absolute media path."""
        return str(self.info.path.absolute())

    @property
    def last_frame(self) -> int:
        return self.info.frame_count - 1


def timecode(info: media.ClipInfo, frame: int) -> str:
    """The source timecode of a frame (the clip's own start timecode, else from 00:00:00:00)."""
    return media.frame_timecode(info.start_timecode, frame, info.frame_rate)


def rate_text(rate: Fraction) -> str:
    return f"{float(rate):.3f}".rstrip("0").rstrip(".") + " fps"


class ClipModel(QObject):
    """The current clip, the playhead and the marks. Marks are inclusive source frames."""

    clip_changed = Signal()
    clips_changed = Signal()
    position_changed = Signal(int)
    marks_changed = Signal()
    error = Signal(str)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.clips: list[OpenClip] = []
        self.current: OpenClip | None = None
        self.position = 0
        self.mark_in: int | None = None
        self.mark_out: int | None = None

    # --- opening ---

    def open(self, path: str | Path, first: int | None = None, last: int | None = None,
             handoff_index: int | None = None, name: str = "") -> OpenClip | None:
        """Open a media file (or switch to it when already open); None and `error` when it cannot be read."""
        path = Path(path).expanduser().absolute()
        existing = next((c for c in self.clips if c.path == path and c.handoff_index == handoff_index), None)
        if existing is None:
            try:
                info = media.probe(path)
            except media.MediaError as exc:
                self.error.emit(str(exc))
                return None
            existing = OpenClip(info, handoff_index, name or path.name)
            self.clips.append(existing)
            self.clips_changed.emit()
        self.select(existing)
        if first is not None or last is not None:
            self.set_marks(first, last)
        return existing

    def open_handoff(self, clips: list[ClipRef]) -> dict[int, str]:
        """Open an editor's clips, the first one shown with its range marked; returns {index: why not} for
        the clips that cannot be read."""
        failed: dict[int, str] = {}
        messages: list[str] = []
        self.error.connect(messages.append)
        try:
            opened = []
            for index, ref in enumerate(clips):
                messages.clear()
                clip = self.open(ref.media, ref.first, ref.last, handoff_index=index, name=ref.name)
                if clip is None:
                    failed[index] = messages[0] if messages else f"{ref.media} cannot be opened."
                else:
                    opened.append((clip, ref))
        finally:
            self.error.disconnect(messages.append)
        if opened:
            clip, ref = opened[0]
            self.select(clip)
            self.set_marks(ref.first, ref.last)
        return failed

    def select(self, clip: OpenClip) -> None:
        if clip is self.current:
            return
        self.current = clip
        self.mark_in = self.mark_out = None
        self.position = 0
        self.clip_changed.emit()
        self.marks_changed.emit()
        self.position_changed.emit(0)

    # --- playhead ---

    @property
    def last_frame(self) -> int:
        return self.current.last_frame if self.current else 0

    def seek(self, frame: int) -> int:
        if self.current is None:
            return 0
        frame = max(0, min(self.last_frame, int(frame)))
        if frame != self.position:
            self.position = frame
            self.position_changed.emit(frame)
        return frame

    def step(self, frames: int) -> None:
        self.seek(self.position + frames)

    # --- marks ---

    def set_in(self, frame: int | None = None) -> None:
        """Mark in at the playhead (I). An in after the out moves the out, as editors do."""
        if self.current is None:
            return
        self.mark_in = self.position if frame is None else frame
        if self.mark_out is not None and self.mark_out < self.mark_in:
            self.mark_out = None
        self.marks_changed.emit()

    def set_out(self, frame: int | None = None) -> None:
        """Mark out at the playhead (O); inclusive, like an editor's out point."""
        if self.current is None:
            return
        self.mark_out = self.position if frame is None else frame
        if self.mark_in is not None and self.mark_in > self.mark_out:
            self.mark_in = None
        self.marks_changed.emit()

    def clear_marks(self) -> None:
        self.mark_in = self.mark_out = None
        self.marks_changed.emit()

    def set_marks(self, first: int | None, last: int | None) -> None:
        if self.current is None:
            return
        clamp = lambda f: None if f is None else max(0, min(self.last_frame, int(f)))  # noqa: E731
        self.mark_in, self.mark_out = clamp(first), clamp(last)
        self.marks_changed.emit()
        if self.mark_in is not None:
            self.seek(self.mark_in)

    @property
    def range(self) -> tuple[int, int]:
        """The frames a submit edits: the marks, or the clip's ends where a mark is not set."""
        first = self.mark_in if self.mark_in is not None else 0
        last = self.mark_out if self.mark_out is not None else self.last_frame
        return first, last

    def timecode(self, frame: int | None = None) -> str:
        if self.current is None:
            return "--:--:--:--"
        return timecode(self.current.info, self.position if frame is None else frame)
