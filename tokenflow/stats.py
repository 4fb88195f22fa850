"""What an edit cost, in the shape `tokenflow edit --stats` writes."""

from __future__ import annotations

import resource
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from tokenflow import devices


def process_peak_memory_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux reports KiB


@dataclass
class EditStats:
    frames: int = 0
    working_size: tuple[int, int] = (0, 0)  # what the model sees, pad included
    content_size: tuple[int, int] = (0, 0)  # the picture inside it, aspect kept (tokenflow/aspect.py)
    unet_passes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    total_seconds: float = 0.0
    first_preview_seconds: float | None = None
    peak_memory_bytes: int = 0
    inversion_cached: bool = False
    method: str = "tokenflow"
    device: str = "cpu"
    max_joint_keyframes: int = 0  # keyframes attending jointly per group, as resolved for this edit
    started: float = field(default_factory=time.perf_counter, repr=False)

    def count(self, stage: str, frame_evaluations: int) -> None:
        self.unet_passes[stage] += frame_evaluations

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            if self.device.startswith(("cuda", "mps")):
                # GPU work is queued, not done: without this a stage's kernels would be
                # billed to whichever later stage first waits for them. Once per stage.
                devices.synchronize(torch.device(self.device))
            self.seconds[stage] += time.perf_counter() - start

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def finish(self, device: torch.device) -> None:
        self.total_seconds = self.elapsed()
        gpu = devices.peak_memory_bytes(device)
        self.peak_memory_bytes = process_peak_memory_bytes() if gpu is None else gpu

    def to_dict(self) -> dict:
        passes = dict(self.unet_passes)
        return {
            "frames": self.frames,
            "working_size": list(self.working_size),
            "content_size": list(self.content_size),
            "unet_passes": passes,
            "unet_passes_total": sum(passes.values()),
            "unet_passes_per_frame": (sum(passes.values()) / self.frames) if self.frames else 0.0,
            "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            "total_seconds": round(self.total_seconds, 4),
            "first_preview_seconds": None if self.first_preview_seconds is None else round(self.first_preview_seconds, 4),
            "peak_memory_bytes": self.peak_memory_bytes,
            "inversion_cached": self.inversion_cached,
            "method": self.method,
            "device": self.device,
            "max_joint_keyframes": self.max_joint_keyframes,
        }
