"""A stand-in for tokenflow.engine.Engine that follows its contract without a model.

Output frame i is the inverted input frame (255 - pixel), so tests can check pixels.
Knobs (attributes, or environment variables when a server subprocess builds it):
step_s (FAKE_ENGINE_STEP_S) seconds per denoising step; fail (FAKE_ENGINE_FAIL):
"oom" raises a torch-style out-of-memory RuntimeError at step 1 (so does a job
whose prompt is "trigger-oom"); frame_s (FAKE_ENGINE_FRAME_S) seconds per finished frame.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from tokenflow.events import Cancelled, FrameReady, Preview, Progress


@dataclass
class FakeStats:
    frames: int

    def to_dict(self) -> dict:
        return {"frames": self.frames, "engine": "fake"}


class FakeEngine:
    def __init__(self, model: str = "fake", step_s: float | None = None, fail: str | None = None,
                 frame_s: float | None = None):
        self.model_name = model
        self.step_s = float(os.environ.get("FAKE_ENGINE_STEP_S", "0.02")) if step_s is None else step_s
        self.frame_s = float(os.environ.get("FAKE_ENGINE_FRAME_S", "0")) if frame_s is None else frame_s
        self.fail = os.environ.get("FAKE_ENGINE_FAIL") if fail is None else fail
        self.calls = 0

    def edit(self, frames, n_frames, params, on_event=None, should_cancel=lambda: False, matte=None):
        self.calls += 1
        emit = on_event or (lambda e: None)
        start = time.monotonic()
        clip = []
        for i, frame in enumerate(frames):
            clip.append(frame)
            emit(Progress("encode", i + 1, n_frames, i + 1, n_frames, time.monotonic() - start, None))
        assert len(clip) == n_frames, (len(clip), n_frames)
        keyframes = tuple(range(0, n_frames, max(1, params.kf_interval)))
        for step in range(params.steps):
            if should_cancel():
                raise Cancelled()
            if (self.fail == "oom" or params.prompt == "trigger-oom") and step == 1:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            time.sleep(self.step_s)
            emit(Progress("edit", step + 1, params.steps, 0, n_frames, time.monotonic() - start, None))
            if (step + 1) % params.preview_every == 0 or step + 1 == params.steps:
                images = tuple(np.ascontiguousarray(clip[k][::4, ::4]) for k in keyframes)
                emit(Preview(step + 1, keyframes, images, time.monotonic() - start))
        for i, frame in enumerate(clip):
            if should_cancel():
                raise Cancelled()
            time.sleep(self.frame_s)
            emit(FrameReady(i, 255 - frame))
            emit(Progress("decode", i + 1, n_frames, i + 1, n_frames, time.monotonic() - start, 0.0))
        return FakeStats(n_frames)


def factory(model: str) -> FakeEngine:
    return FakeEngine(model)
