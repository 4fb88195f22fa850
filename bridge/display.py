"""A one-line live status display for terminals; silent when output is not a TTY.

Shared by `tokenflow edit` (in-process) and `tokenflow submit` / `jobs watch` (over the wire).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def progress_text(stage: str, step: int, total: int, frames_done: int, frames_total: int, eta_s: float | None) -> str:
    return f"{stage:<9} {step}/{total}  frames {frames_done}/{frames_total}  ETA {format_duration(eta_s)}"


class StatusLine:
    """Redraws one status line at most ~10 times a second."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._width = 0

    def show(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < 0.1):
            return
        self._last = now
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def message(self, text: str) -> None:
        """A line that stays (on a terminal)."""
        if self.enabled:
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self.stream.flush()
            self._width = 0

    def end(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0
