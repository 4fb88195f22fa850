"""The panel as a process (issue 20 item 6): SIGTERM (a logout, `kill`) ends it as Ctrl+Q does,
so the server it started stops too instead of running on without its panel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import REPO


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_stops_the_server_the_panel_started(tmp_path, tiny_model_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1",
           "TOKENFLOW_MODEL": str(tiny_model_dir), "TOKENFLOW_DATA_DIR": str(tmp_path / "data"),
           "TOKENFLOW_CACHE_DIR": str(tmp_path / "cache"), "TOKENFLOW_CONFIG_DIR": str(tmp_path / "config"),
           "TOKENFLOW_RUNTIME_DIR": str(tmp_path / "run"), "TOKENFLOW_DEVICE": "cpu"}
    panel = subprocess.Popen([sys.executable, "-m", "cli", "panel", "--start-server", "--data-dir",
                              str(tmp_path / "panel"), "--server", f"ipc://{tmp_path}/server.sock"],
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        servers: list[int] = []
        while time.monotonic() < deadline and not servers:
            servers = _children(panel.pid)
            time.sleep(0.2)
        assert servers, "the panel did not start a server"
        time.sleep(2)  # let the server get going
        panel.send_signal(signal.SIGTERM)
        assert panel.wait(timeout=60) is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in servers):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in servers), "the server outlived its panel"
    finally:
        if panel.poll() is None:
            panel.kill()
        for pid in _children(panel.pid):
            os.kill(pid, signal.SIGKILL)
