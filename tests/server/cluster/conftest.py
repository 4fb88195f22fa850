"""A Ray cluster on this machine (head + two worker nodes with one fake GPU each, all on
127.0.0.1) and in-process servers that use it, with the tiny random model.

One cluster per test module: starting Ray costs seconds. The worker nodes' "GPU" is a
resource count only (the engine runs on the CPU); the actors reserve it as they would a
real one, so Ray places one actor per node.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Ray turns 127.0.0.1 into the machine's outward address (where a real cluster's nodes reach
# each other) unless multi-node clusters are off; every test address stays on loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from bridge.wire import protocol as p  # noqa: E402
from bridge.wire.client import Client  # noqa: E402
from server.app import Server  # noqa: E402
from server.config import ServerConfig  # noqa: E402
from server.paths import DataDir  # noqa: E402

pytestmark = pytest.mark.cluster

LOOPBACK = "127.0.0.1"
NODE = {"num_cpus": 1, "num_gpus": 1, "node_ip_address": LOOPBACK, "object_store_memory": 100 * 1024 * 1024}
# Dead nodes are noticed within about a second, not the default fifteen.
FAST_HEALTH = {"health_check_period_ms": 300, "health_check_failure_threshold": 3, "health_check_timeout_ms": 300}
PARAMS = {"steps": 2, "short_side": 64, "kf_interval": 2, "preview_every": 1, "seed": 7}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "num_gpus": 0, "node_ip_address": LOOPBACK, "include_dashboard": False,
        "object_store_memory": 100 * 1024 * 1024, "_system_config": FAST_HEALTH,
    })
    for _ in range(2):
        c.add_node(**NODE)
    yield c
    if ray.is_initialized():
        ray.shutdown()
    c.shutdown()


class ClusterServer:
    """An in-process `tokenflow serve --cluster ADDRESS` on an ipc:// socket."""

    def __init__(self, root: Path, model: Path, clip: Path, address: str | None):
        self.root, self.clip = root, clip
        self.out = root / "out"
        self.out.mkdir(parents=True, exist_ok=True)
        self.missing_model = str(root / "no-such-model")  # offered, but no node can load it
        self.config = ServerConfig(data=DataDir(root / "data"), models=(str(model), self.missing_model), device="cpu",
                                   bind=f"ipc://{root}/server.sock", allowed_output_dirs=(self.out,),
                                   limits=p.Limits(heartbeat_s=0.2, heartbeat_liveness=25), cluster=address)
        self.server: Server | None = None
        self.clients: list[Client] = []

    def start(self) -> ClusterServer:
        self.server = Server(self.config)
        self.endpoint = self.server.start_in_thread()
        return self

    def stop(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()
        if self.server is not None:
            self.server.stop(timeout=60)
            self.server = None

    def client(self) -> Client:
        c = Client(self.endpoint, timeout=30.0)
        c.connect()
        self.clients.append(c)
        return c

    def spec(self, name: str, frames: str = "0:3", model: str | None = None, **params) -> p.JobSpec:
        return p.JobSpec(input=str(self.clip), params={"prompt": name, **PARAMS, **params}, frames=frames,
                         output=str(self.out / f"{name}.mp4"), model=model)

    def workers(self) -> int:
        assert self.server is not None
        return self.server.worker.pool.workers()  # pyright: ignore[reportAttributeAccessIssue]


def wait_for(what: Callable[[], object], timeout: float = 120.0, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
