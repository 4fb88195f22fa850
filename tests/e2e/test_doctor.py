"""`tokenflow doctor` on this machine (no GPU, no hub): with no server and no model, then against a real server."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

from bridge.wire.client import Client
from cli.main import main
from tests.e2e.conftest import ServeProcess


@pytest.fixture
def isolated(tmp_path, monkeypatch) -> Path:
    """Every per-user folder in tmp_path, and TOKENFLOW_SERVER at a port nothing listens on."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in (("HF_HOME", "hf"), ("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TOKENFLOW_CONFIG_DIR", "TOKENFLOW_DATA_DIR",
                "TOKENFLOW_CACHE_DIR", "TOKENFLOW_MODEL"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("TOKENFLOW_SERVER", f"tcp://127.0.0.1:{s.getsockname()[1]}")
    return tmp_path


def _report(capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    return code, {c["label"]: c for c in report["checks"]} | {"ok": report["ok"]}


def test_doctor_with_no_model_and_no_server_says_what_blocks_and_what_to_do(isolated, capsys, monkeypatch):
    code, checks = _report(capsys, "--timeout", "0.5")
    assert code == 1 and checks["ok"] is False
    assert checks["Models"]["status"] == "fail" and "tokenflow models pull" in checks["Models"]["advice"]
    assert checks["Server"]["status"] == "warn" and checks["Server"]["data"]["reachable"] is False
    assert "tokenflow serve" in checks["Server"]["advice"]
    assert checks["PyTorch"]["status"] == "ok" and torch.__version__ in checks["PyTorch"]["detail"]
    if torch.cuda.is_available():
        assert checks["GPU"]["status"] in ("ok", "warn") and torch.cuda.get_device_name(0) in checks["GPU"]["detail"]
    else:
        assert checks["GPU"]["detail"].startswith("no CUDA GPU: edits run on the CPU, very slowly")
    disk = checks["Disk: models"]
    assert disk["data"]["path"] == str(isolated / "hf" / "hub")
    assert abs(disk["data"]["free_bytes"] - shutil.disk_usage(isolated).free) < 1e9
    assert checks["Install: desktop"]["status"] == "info" and "tokenflow install desktop" in checks["Install: desktop"]["advice"]

    # The same in words, for a person.
    assert main(["doctor", "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert "problem(s) block an edit: Models" in out and "-> Download one:" in out

    # A disk with no room blocks an edit too.
    import cli.doctor as doctor

    monkeypatch.setattr(doctor, "MIN_FREE_BYTES", shutil.disk_usage(isolated).free + 10**12)
    _, checks = _report(capsys, "--timeout", "0.5")
    assert checks["Disk: data"]["status"] == "fail" and "Free some space" in checks["Disk: data"]["advice"]


def _wait_ready(endpoint: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with Client(endpoint, timeout=10) as client:
        while time.monotonic() < deadline:
            state = client.hello().engine_state
            if state == "ready":
                return
            assert not state.startswith("failed"), state
            time.sleep(0.2)  # polling the server's own state, not a guess at timing
    raise AssertionError(f"the server's engine was not ready in {timeout} s")


def test_doctor_reports_a_running_server_its_queue_and_a_model_registered_by_name(isolated, tiny_model_dir, capsys,
                                                                                  shipped_clip):
    assert main(["models", "add", str(tiny_model_dir), "--name", "tiny"]) == 0
    # The server is given the registered *name*: it loads only if the name resolves to the folder.
    server = ServeProcess(isolated / "serve", Path("tiny")).start()
    try:
        _wait_ready(server.endpoint)
        with Client(server.endpoint) as client:
            jobs = [client.submit(server.spec(shipped_clip, frames="0:15", steps=60, name=f"long{i}.mp4")).job
                    for i in range(2)]
            code, checks = _report(capsys, "--server", server.endpoint)
            for job in jobs:
                client.cancel(job)
    finally:
        server.stop()
    assert code == 0 and checks["ok"] is True  # a model, PyTorch and disk: nothing blocks
    srv = checks["Server"]
    assert srv["status"] == "ok" and srv["data"]["reachable"] and srv["data"]["engine_state"] == "ready"
    assert srv["data"]["models"] == ["tiny"] and srv["data"]["device"] == "cpu"
    assert srv["data"]["running"] + srv["data"]["queued"] == 2 and srv["data"]["running"] <= 1
    assert server.endpoint in srv["detail"]
    # tiny is usable; the default hub model is not here, which is a warning, not a blocker.
    assert checks["Models"]["status"] == "warn" and "tiny" in checks["Models"]["detail"]
