"""`tokenflow submit --format` and `tokenflow probe --server` against a real `tokenflow serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import OpenEXR

from tests.e2e.conftest import REPO


def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=300)


def test_submit_an_exr_sequence_numbered_from_1001(serve, shipped_clip):
    out = serve.out / "plates" / "sh020_%04d.exr"
    run = cli("submit", str(shipped_clip), "-p", "a watercolor painting", "--frames", "60:63", "--steps", "2",
              "--size", "64", "--kf-interval", "4", "-o", str(out), "--format", "exr", "--start-number", "1001",
              "--server", serve.endpoint, "--timeout", "60")
    assert run.returncode == 0, run.stderr
    names = sorted(p.name for p in out.parent.iterdir())
    assert names == [f"sh020_{n}.exr" for n in range(1001, 1005)]
    with OpenEXR.File(str(out.parent / names[0])) as exr:
        pixels = exr.channels()["RGB"].pixels.copy()
    assert pixels.dtype == np.float16 and pixels.shape == (144, 176, 3)
    # Half floats between the 8-bit levels: the server handed the writer the decoder's floats.
    assert np.mean(np.abs(pixels.astype(np.float32) * 255 - np.rint(pixels.astype(np.float32) * 255)) > 0.05) > 0.3

    refused = cli("submit", str(shipped_clip), "-p", "x", "--frames", "60:63", "-o", str(out), "--format", "exr",
                  "--start-number", "1001", "--server", serve.endpoint)
    assert refused.returncode == 2 and "not replaced" in refused.stderr


def test_probe_on_the_server(serve, shipped_clip):
    run = cli("probe", str(shipped_clip), "--json", "--server", serve.endpoint)
    assert run.returncode == 0, run.stderr
    facts = json.loads(run.stdout)
    assert (facts["frame_count"], facts["frame_rate"], facts["variable_rate"]) == (120, "30000/1001", False)
