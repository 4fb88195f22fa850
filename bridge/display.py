"""Texts for people: durations, byte counts, and a one-line live status display for terminals
(silent when output is not a TTY).

Shared by `tokenflow edit` (in-process), `tokenflow submit` / `jobs watch` (over the wire), and
every message that tells a user a size (the server's disk and memory checks, doctor, models).
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "--"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def format_bytes(n: float, binary: bool = False) -> str:
    """A byte count as people read it: "512 B", "1.5 MB" (powers of 1000, as disks are sold), or with
    binary=True "7.8 GiB" (powers of 1024, as GPU memory is reported). GB/GiB is the largest unit."""
    step, units = (1024, ("B", "KiB", "MiB", "GiB")) if binary else (1000, ("B", "KB", "MB", "GB"))
    for unit in units:
        if abs(n) < step or unit == units[-1]:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= step
    raise AssertionError("unreachable")


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
