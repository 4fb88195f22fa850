"""`tokenflow serve --cluster`: jobs run on a Ray cluster's worker actors, the server stays the
one front door (docs/cluster.md). The tests share one cluster and one server and run in file
order: the last one switches a node off and brings a new one in."""

from __future__ import annotations

import numpy as np
import pytest

from bridge import media
from bridge.wire import protocol as p
from bridge.wire.client import Client
from server.app import Server
from server.cluster.status import cluster_status
from server.config import ServerConfig
from server.paths import DataDir
from tests.server.cluster.conftest import NODE, ClusterServer, wait_for

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def served(cluster, tiny_model_dir, shipped_clip, tmp_path_factory):
    s = ClusterServer(tmp_path_factory.mktemp("cluster-server"), tiny_model_dir, shipped_clip, cluster.address)
    s.start()
    wait_for(lambda: s.workers() == 2)
    yield s
    s.stop()


def frames_of(path) -> np.ndarray:
    return np.stack(list(media.read_frames(path, 0, 3)))


def workers() -> dict[str, dict]:
    return {w["name"]: w for w in cluster_status()["workers"]}


def shape(events) -> list[tuple]:
    """An event stream's order, less the progress events (whose count depends on when the model loaded)."""
    return [(e.kind, getattr(e.body, "kind", None), getattr(e.body, "frame", None)) for e in events
            if e.kind != "progress"]


def single_machine_run(spec: p.JobSpec, root, model) -> tuple[np.ndarray, list[tuple]]:
    """The same job on the local worker (no cluster): its output's pixels and its events' order."""
    config = ServerConfig(data=DataDir(root / "data"), models=(str(model),), device="cpu",
                          bind=f"ipc://{root}/local.sock", allowed_output_dirs=(root,))
    server = Server(config)
    try:
        c = Client(server.start_in_thread(), timeout=60)
        c.connect()
        output = root / "single.mp4"
        local = p.JobSpec(input=spec.input, params=spec.params, frames=spec.frames, output=str(output))
        events = list(c.events(c.submit(local).job))
        c.close()
    finally:
        server.stop()
    return frames_of(output), shape(events)


def test_four_queued_jobs_run_on_both_workers_with_the_single_machine_results(served, tiny_model_dir, tmp_path):
    c = served.client()
    assert c.welcome.device == "Ray cluster, 2 workers"  # what the panel's status bar shows
    done_before = {name: w["jobs_done"] for name, w in workers().items()}
    specs = [served.spec(f"shot{n}") for n in range(4)]
    jobs = [c.submit(spec).job for spec in specs]
    streams = [list(c.events(job)) for job in jobs]
    assert [events[-1].kind for events in streams] == ["done"] * 4, [events[-1].body for events in streams]
    assert all(served.server.store.require(job).attempts == 1 for job in jobs)
    took = {name for name, w in workers().items() if w["jobs_done"] > done_before[name]}
    assert len(took) == 2, workers()  # both workers ran some of the four
    assert all(w["loads"] == 1 for w in workers().values())  # each loaded the model once, at start
    pixels, order = single_machine_run(specs[1], tmp_path, tiny_model_dir)
    assert np.array_equal(frames_of(served.out / "shot1.mp4"), pixels)
    # The same events in the same order as the local worker: previews, then per frame a proxy and a frame.
    assert shape(streams[1]) == order and [k for k, _, _ in order].count("frame") == 4
