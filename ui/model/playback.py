"""Playback at the clip's own rate, with J/K/L shuttle as in editors.

The playhead follows the wall clock (position = start + elapsed * rate * speed), so a
slow decode drops frames instead of slowing the clip down: what is shown stays in sync
with time, and the source and the result, which share the playhead, stay in sync with
each other.
"""

from __future__ import annotations

from fractions import Fraction

from PySide6.QtCore import QElapsedTimer, QObject, QTimer, Signal

from ui.model.clip import ClipModel

SHUTTLE_SPEEDS = (1, 2, 4, 8)


class PlaybackModel(QObject):
    changed = Signal()

    def __init__(self, clip: ClipModel, parent: QObject | None = None):
        super().__init__(parent)
        self.clip = clip
        self.speed = 0  # frames of source per frame of time: negative plays backwards; 0 stopped
        self.loop = False
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._clock = QElapsedTimer()
        self._start_frame = 0
        clip.clip_changed.connect(self.stop)

    @property
    def playing(self) -> bool:
        return self.speed != 0

    @property
    def rate(self) -> Fraction:
        return self.clip.current.info.frame_rate if self.clip.current else Fraction(25)

    def _run(self, speed: int) -> None:
        if self.clip.current is None:
            return
        self.speed = speed
        if speed == 0:
            self._timer.stop()
        else:
            if self.clip.position >= self.clip.last_frame and speed > 0:
                self.clip.seek(self.clip.mark_in or 0)
            if self.clip.position <= 0 and speed < 0:
                self.clip.seek(self.clip.last_frame)
            self._start_frame = self.clip.position
            self._clock.start()
            self._timer.start(max(1, int(1000 / (float(self.rate) * abs(speed)))))
        self.changed.emit()

    def stop(self) -> None:
        if self.speed != 0:
            self._run(0)

    def toggle(self) -> None:
        """Space: play forwards at normal speed, or stop."""
        self._run(0 if self.playing else 1)

    def forward(self) -> None:
        """L: play forwards; again: faster."""
        self._run(self._faster(1))

    def backward(self) -> None:
        """J: play backwards; again: faster."""
        self._run(self._faster(-1))

    def _faster(self, direction: int) -> int:
        if self.speed * direction <= 0:
            return direction
        index = SHUTTLE_SPEEDS.index(abs(self.speed)) if abs(self.speed) in SHUTTLE_SPEEDS else 0
        return direction * SHUTTLE_SPEEDS[min(index + 1, len(SHUTTLE_SPEEDS) - 1)]

    def _tick(self) -> None:
        elapsed = self._clock.elapsed() / 1000.0
        frame = self._start_frame + int(elapsed * float(self.rate) * self.speed)
        end = self.clip.mark_out if self.clip.mark_out is not None and self._start_frame <= self.clip.mark_out \
            else self.clip.last_frame
        start = self.clip.mark_in if self.clip.mark_in is not None and self._start_frame >= self.clip.mark_in else 0
        if frame > end or frame < start:
            if self.loop:
                self.clip.seek(start if self.speed > 0 else end)
                self._start_frame = self.clip.position
                self._clock.start()
                return
            self.clip.seek(end if frame > end else start)
            self._run(0)
            return
        self.clip.seek(frame)
