"""Events the engine emits while it works; the server forwards them as proxies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Progress:
    # stage: "load", "read", "encode", "inversion", "edit", "decode"
    stage: str
    step: int  # steps done in this stage (frames for encode/decode)
    total: int
    frames_done: int
    frames_total: int
    elapsed_s: float
    eta_s: float | None


@dataclass(frozen=True)
class Preview:
    """Predicted clean keyframes at an edit step (small RGB uint8 images)."""

    step: int
    frame_indices: tuple[int, ...]  # clip-relative frame indices (0 = first frame of the range)
    images: tuple[np.ndarray, ...]  # each HxWx3 uint8, short side <= preview_size
    elapsed_s: float
    variant: int = 0  # which prompt's keyframes (0: `params.prompt`); see FrameReady


@dataclass(frozen=True)
class FrameReady:
    """One finished frame at the source resolution, in clip order."""

    index: int  # clip-relative
    image: np.ndarray  # HxWx3 uint8 at the source size
    # The same picture as the decoder made it, HxWx3 float32 in [0, 1], for writers that
    # keep more than 8 bits; None when the producer has only the uint8 picture.
    float_image: np.ndarray | None = None
    # Which prompt of a several-prompt edit (0: the first, `params.prompt`); see Engine.edit.
    variant: int = 0

    @property
    def best_image(self) -> np.ndarray:
        """The most precise form of the picture: what output writers should be given."""
        return self.float_image if self.float_image is not None else self.image


EngineEvent = Progress | Preview | FrameReady
EventSink = Callable[[EngineEvent], None]


class Cancelled(Exception):
    """Raised inside the engine when the caller's cancel check returns True."""
