"""The OpenFX effect built once per test session with CMake, outside the source tree.

Without the C++ toolchain or the Debian dev packages the OFX tests skip, saying what to
install; in CI (CI=true) they fail instead, because CI is where the bundle must be built
(.ci/run installs the packages with packaging/ofx/build-deps.sh).
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np
import pytest

from bridge.installers import InstallError
from bridge.installers import ofx as target

CLIP = Path(__file__).resolve().parents[2] / "media" / "carphone_pristine.mp4"  # real footage, in the repository


@pytest.fixture(scope="session")
def ofx_bundle(tmp_path_factory) -> Path:
    missing = target.missing_build_tools()
    if missing:
        why = (f"the OpenFX effect cannot be built here: install {' '.join(missing)} "
               "(Debian: packaging/ofx/build-deps.sh)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(why)
        pytest.skip(why)
    build = Path(os.environ.get("TOKENFLOW_OFX_BUILD_DIR") or tmp_path_factory.getbasetemp().parent / "ofx-build")
    try:
        bundle, _seconds = target.build(build)
    except InstallError as exc:
        pytest.fail(str(exc))
    return bundle


def clip_frames(count: int = 8, short_side: int = 64) -> list[np.ndarray]:
    """The first `count` frames of a real clip, scaled so the short side is `short_side` (even sides)."""
    out = []
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            w, h = frame.width, frame.height
            k = short_side / min(w, h)
            size = (int(w * k) // 8 * 8, int(h * k) // 8 * 8)
            out.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if len(out) == count:
                break
    return out


@pytest.fixture(scope="session")
def clip() -> list[np.ndarray]:
    return clip_frames()
