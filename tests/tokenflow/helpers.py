from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge.media import read_frames


def clip_frames(path: Path, first: int, count: int) -> list[np.ndarray]:
    return list(read_frames(path, first, first + count - 1))


def relative_error(a, b) -> float:
    return float((a - b).norm() / b.norm())
