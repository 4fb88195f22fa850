"""An in-process server on a free loopback port, driven by the fake engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.wire import protocol as p
from bridge.wire.client import Client
from server.app import Server
from server.config import ServerConfig
from server.paths import DataDir
from server.store import JobStore
from tests.server.fake_engine import FakeEngine


class Harness:
    def __init__(self, root: Path, engine: FakeEngine, clip: Path):
        self.root = root
        self.engine = engine
        self.clip = clip
        self.config = ServerConfig(data=DataDir(root / "data"), models=("fake", "fake-2"),
                                   bind=f"ipc://{root}/server.sock", allowed_output_dirs=(root / "out",),
                                   limits=p.Limits(heartbeat_s=0.2, heartbeat_liveness=5))
        (root / "out").mkdir(exist_ok=True)
        self.server: Server | None = None
        self.endpoint = ""
        self.clients: list[Client] = []

    def start(self) -> Harness:
        self.server = Server(self.config, engine_factory=lambda model: self.engine)
        self.endpoint = self.server.start_in_thread()
        return self

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()
        if self.server is not None:
            self.server.stop()
            self.server = None

    def rewind_to_running(self, job: str, before_frame: int) -> None:
        """Stop the server and rewind the store to "running, nothing recorded from frame
        `before_frame` on": the state a kill -9 leaves mid-job."""
        self.stop()
        store = JobStore(self.config.data.database)
        with store._txn() as db:
            cut = db.execute("SELECT MIN(seq) FROM events WHERE job_id = ? AND type = 'frame' AND frame = ?",
                             (job, before_frame)).fetchone()[0]
            db.execute("DELETE FROM events WHERE job_id = ? AND seq >= ?", (job, cut - 1))
            db.execute("UPDATE jobs SET state = 'running', last_seq = ?, outputs = '[]' WHERE id = ?",
                       (cut - 2, job))
        store.close()

    def client(self, **kw) -> Client:
        c = Client(self.endpoint, timeout=kw.pop("timeout", 5.0), **kw)
        c.connect()
        self.clients.append(c)
        return c

    def spec(self, frames: str = "10:17", steps: int = 4, prompt: str = "x", **kw) -> p.JobSpec:
        kw.setdefault("output", str(self.root / "out" / f"{prompt}-{frames.replace(':', '_')}.mp4"))
        params = {"prompt": prompt, "steps": steps, "preview_every": 2, "kf_interval": 4}
        params.update(kw.pop("params", {}))
        return p.JobSpec(input=str(self.clip), params=params, frames=frames, **kw)


@pytest.fixture
def harness(tmp_path, shipped_clip):
    h = Harness(tmp_path, FakeEngine(step_s=0.02), shipped_clip).start()
    yield h
    h.stop()
