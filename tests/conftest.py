"""Shared fixtures: the tiny random SD-layout model (built once per run) and real footage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tiny model's work items are small: with more than one OpenMP thread per process,
# two processes on two cores (a test and the server it started) spin against each other
# and run 5-30x slower. Subprocesses inherit this.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# No test may reach the model hub: the machines that run them cannot.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
SHIPPED_CLIP = REPO / "media" / "carphone_pristine.mp4"
SHARED_MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session", autouse=True)
def private_user_dirs(tmp_path_factory):
    """The server's socket folder and the local CurveZMQ keys (bridge/wire/local.py) go to a test
    folder, never the real user's; subprocesses inherit the environment."""
    root = tmp_path_factory.mktemp("user")
    os.environ["TOKENFLOW_RUNTIME_DIR"] = str(root / "run")
    os.environ["TOKENFLOW_CONFIG_DIR"] = str(root / "config")
    yield root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from server.quiet import quiet_libraries
    from tokenflow.tiny import make_tiny_pipeline_dir

    quiet_libraries()
    return make_tiny_pipeline_dir(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """One loaded engine without a disk cache; tests that need a cache make their own."""
    from tokenflow.engine import Engine

    return Engine(str(tiny_model_dir), device="cpu", cache_dir=None)


@pytest.fixture(scope="session")
def tiny_sdxl_model_dir(tmp_path_factory) -> Path:
    from server.quiet import quiet_libraries
    from tokenflow.tiny import make_tiny_sdxl_pipeline_dir

    quiet_libraries()
    return make_tiny_sdxl_pipeline_dir(tmp_path_factory.mktemp("tiny-sdxl-model"))


@pytest.fixture(scope="session")
def tiny_sdxl_engine(tiny_sdxl_model_dir):
    from tokenflow.engine import Engine

    return Engine(str(tiny_sdxl_model_dir), device="cpu", cache_dir=None)


@pytest.fixture(scope="session", params=["sd", "sdxl"])
def family_engine(request):
    """The tiny engine of each model family (SD 1.x/2.x layout, SDXL layout): the mechanism
    tests run on both."""
    return request.getfixturevalue("tiny_engine" if request.param == "sd" else "tiny_sdxl_engine")


@pytest.fixture(scope="session")
def shipped_clip() -> Path:
    return SHIPPED_CLIP


@pytest.fixture(scope="session")
def shared_media() -> Path:
    if not SHARED_MEDIA.is_dir():
        pytest.skip("../shared/media is not beside this checkout")
    return SHARED_MEDIA
