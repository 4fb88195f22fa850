"""A real `tokenflow serve` process with the tiny random model, on a free loopback port."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bridge.wire import protocol as p

REPO = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on ((?:tcp|ipc)://\S+)")


class ServeProcess:
    """`python -m cli serve ...`; stderr goes to a log file the tests can show."""

    def __init__(self, root: Path, model: Path, bind: str | None = None):
        """bind None: the server's default endpoint (a private ipc:// socket in this server's own
        runtime folder, as a user gets it); "tcp://127.0.0.1:*": loopback with the user's local keys."""
        self.root = root
        self.model = model
        self.bind = bind
        self.data = root / "data"
        self.cache = root / "cache"
        self.out = root / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = root / "serve.log"
        self.runtime = root / "run"  # the default ipc:// socket lives here
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""

    def command(self) -> list[str]:
        bind = ["--bind", self.bind] if self.bind else []
        return [sys.executable, "-m", "cli", "serve", *bind, "--model", str(self.model),
                "--device", "cpu", "--data-dir", str(self.data), "--cache-dir", str(self.cache),
                "--allow-output", str(self.out)]

    def start(self, timeout: float = 120.0) -> ServeProcess:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(REPO),
               "TOKENFLOW_RUNTIME_DIR": str(self.runtime)}
        # One OpenMP thread: on a small shared machine (CI, 2 cores) OpenMP's spinning threads
        # fight the test process and each other and make the tiny model 5-30x slower.
        env.setdefault("OMP_NUM_THREADS", "1")
        # A restart appends to the same log: only lines written after this point count.
        offset = self.log.stat().st_size if self.log.exists() else 0
        log = open(self.log, "a")
        self.proc = subprocess.Popen(self.command(), cwd=REPO, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tokenflow serve exited with {self.proc.returncode}:\n{self.log.read_text()}")
            match = _LISTENING.search(self.log.read_bytes()[offset:].decode(errors="replace"))
            if match:
                self.endpoint = match.group(1)
                # the first start binds a free port; restarts keep it, so clients find the server again
                self.bind = self.endpoint
                return self
            time.sleep(0.1)
        raise RuntimeError(f"tokenflow serve did not start in {timeout} s:\n{self.log.read_text()}")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        with open(self.log, "a") as log:
            log.write("\n--- killed with SIGKILL ---\n")

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode if self.proc else None

    def spec(self, clip: Path, frames: str = "0:7", steps: int = 3, prompt: str = "a watercolor painting",
             name: str | None = None, **params) -> p.JobSpec:
        values = {"prompt": prompt, "steps": steps, "short_side": 64, "kf_interval": 4, "preview_every": 1}
        values.update(params)
        out = self.out / (name or f"{prompt.replace(' ', '_')}_{frames.replace(':', '-')}_{steps}.mp4")
        return p.JobSpec(input=str(clip), params=values, frames=frames, output=str(out))


@pytest.fixture(scope="module")
def serve(tmp_path_factory, tiny_model_dir):
    server = ServeProcess(tmp_path_factory.mktemp("serve"), tiny_model_dir).start()
    yield server
    server.stop()
