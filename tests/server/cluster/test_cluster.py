"""`tokenflow serve --cluster`: jobs run on a Ray cluster's worker actors, the server stays the
one front door (docs/cluster.md). The tests share one cluster and one server and run in file
order: the last one switches a node off and brings a new one in."""

from __future__ import annotations

import numpy as np
import pytest

from bridge import media
from bridge.wire import protocol as p
from bridge.wire.client import Client
from bridge.wire.matte_ref import upload_matte
from server.app import Server
from server.cluster.status import cluster_status
from server.config import ServerConfig
from server.paths import DataDir
from tests.server.cluster.conftest import NODE, PARAMS, ClusterServer, wait_for

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


def pictures(events) -> list[bytes]:
    """The full-resolution frames the engine made, as the server streamed them (lossless)."""
    return [bytes(e.data) for e in events if e.kind == "frame"]


def single_machine_run(spec: p.JobSpec, root, model) -> tuple[list[bytes], list[tuple], np.ndarray]:
    """The same job on the local worker (no cluster): its frames, its events' order, its output's pixels."""
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
    return pictures(events), shape(events), frames_of(output)


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
    frames, order, encoded = single_machine_run(specs[1], tmp_path, tiny_model_dir)
    assert pictures(streams[1]) == frames  # the engine's frames, bit for bit
    # The H.264 files are not compared bit for bit: the actor runs PyTorch on one thread and the
    # local server on two, so the float frames the writers get differ in their last bits, and
    # x264 amplifies an occasional one-level difference (docs/cluster.md, "the same on every machine").
    assert frames_of(served.out / "shot1.mp4").shape == encoded.shape == (4, 144, 176, 3)
    # The same events in the same order as the local worker: previews, then per frame a proxy and a frame.
    assert shape(streams[1]) == order and [k for k, _, _ in order].count("frame") == 4


def test_cluster_status_lists_nodes_gpus_models_and_jobs(served, cluster, capsys):
    from cli.main import main

    assert main(["cluster", "status", "--address", cluster.address]) == 0
    out = capsys.readouterr().out
    assert "3 node(s) alive, 2 GPU(s), 2 tokenflow worker(s)" in out, out
    assert out.count("tiny-model") == 2 and out.count("(loaded 1 time(s)), free") == 2, out


def test_a_worker_names_the_path_and_the_node_when_it_cannot_read_the_source(tmp_path):
    from server.cluster.actor import SourceUnreadable, check_source

    missing = tmp_path / "shot.mov"
    with pytest.raises(SourceUnreadable, match=rf"The source {missing} does not exist on cluster node \S+ \("):
        check_source(str(missing))


def running_on(job: str) -> dict:
    """The worker actor running `job` (waits until one says so)."""
    found = wait_for(lambda: next((w for w in workers().values() if w.get("job") == job), None))
    assert isinstance(found, dict)
    return found


def until_editing(c: Client, job: str) -> int:
    """Follow the job until its first denoising step is reported; returns the next seq."""
    for event in c.events(job, frames=False, proxies=False):
        if event.kind == "progress" and event.body.stage == p.Stage.EDIT:
            return event.seq + 1
        assert not event.terminal, event.body
    raise AssertionError("the job ended before editing")


def test_cancel_stops_the_job_and_the_actor_takes_the_next_without_reloading(served):
    c = served.client()
    before = workers()
    job = c.submit(served.spec("long-cancel", steps=400)).job
    seq = until_editing(c, job)
    actor = running_on(job)
    c.cancel(job)
    rest = list(c.events(job, from_seq=seq, frames=False, proxies=False))
    assert rest[-1].kind == "cancelled", rest[-1].body
    # Stopped within a step or two of the request, not after the remaining hundreds.
    assert sum(1 for e in rest if e.kind == "progress" and e.body.stage == p.Stage.EDIT) <= 3
    after = wait_for(lambda: (w := workers()[actor["name"]])["job"] is None and w)
    assert isinstance(after, dict)
    assert after["pid"] == actor["pid"] and after["model"] == actor["model"]  # the same process, model kept
    # Two jobs at once: each worker takes one, so the cancelled one works again; nothing is reloaded.
    jobs = [c.submit(served.spec(f"after-cancel-{n}")).job for n in range(2)]
    assert [c.wait(j).kind for j in jobs] == ["done", "done"]
    now = workers()
    assert now[actor["name"]]["jobs_done"] == before[actor["name"]]["jobs_done"] + 1
    assert {n: w["loads"] for n, w in now.items()} == {n: w["loads"] for n, w in before.items()}


def test_a_restarted_server_finds_the_actors_and_reloads_nothing(served):
    c = served.client()
    before = workers()
    job = c.submit(served.spec("across-restart", steps=6)).job
    until_editing(c, job)
    served.stop()  # the running job goes back to the queue; the actors stay, detached
    served.start()
    wait_for(lambda: served.workers() == 2)
    c = served.client()
    assert c.wait(job).kind == "done"
    now = workers()
    assert {n: (w["pid"], w["loads"]) for n, w in now.items()} == {n: (w["pid"], w["loads"])
                                                                  for n, w in before.items()}
    assert [str(path) for path in served.out.glob("across-restart*")] == [str(served.out / "across-restart.mp4")]


def test_a_model_no_node_can_load_fails_with_that_reason(served):
    c = served.client()
    end = c.wait(c.submit(served.spec("missing", model=served.missing_model)).job)
    assert end.kind == "failed" and end.body.code == "model_not_found", end.body
    assert served.missing_model in end.body.message


def test_an_uploaded_clip_runs_on_a_worker_that_cannot_see_the_servers_data_folder(served, shipped_clip):
    clip = list(media.read_frames(shipped_clip, 0, 3))
    c = served.client()
    shape = dict(width=176, height=144, channels=3, dtype="uint8", frame_rate="30000/1001", first=0, count=4)
    assert c.upload("cluster-upload", lambda n: clip[n], **shape).complete
    spec = p.JobSpec(input="", upload="cluster-upload", params={"prompt": "upload", **PARAMS}, frames="0:3",
                     output=str(served.out / "upload.mp4"))
    events = list(c.events(c.submit(spec).job))
    assert events[-1].kind == "done", events[-1].body
    assert [e.body.frame for e in events if e.kind == "frame"] == [0, 1, 2, 3]


def write_matte(folder) -> str:
    """A matte sequence numbered like the clip's frames 0..3: the left half edited."""
    import cv2

    picture = np.zeros((144, 176), np.uint8)
    picture[:, :88] = 255
    for number in range(4):
        cv2.imwrite(str(folder / f"matte.{number:04d}.png"), picture)
    return str(folder / "matte.%04d.png")


def test_a_matte_job_runs_on_a_worker_with_the_single_machine_results(served, tiny_model_dir, shipped_clip, tmp_path):
    matte = write_matte(tmp_path)
    c = served.client()
    spec = served.spec("matted")
    spec = p.JobSpec(input=spec.input, params={**spec.params, "matte": matte}, frames=spec.frames, output=spec.output)
    events = list(c.events(c.submit(spec).job))
    assert events[-1].kind == "done", events[-1].body
    frames, _, _ = single_machine_run(spec, tmp_path, tiny_model_dir)
    assert pictures(events) == frames  # the actor read the matte itself: the same frames, bit for bit
    # Beside an upload the matte's frames travel with the call.
    clip = list(media.read_frames(shipped_clip, 0, 3))
    shape = dict(width=176, height=144, channels=3, dtype="uint8", frame_rate="30000/1001", first=0, count=4)
    assert c.upload("cluster-matte-upload", lambda n: clip[n], **shape).complete
    uploaded = p.JobSpec(input="", upload="cluster-matte-upload", params=spec.params, frames="0:3",
                         output=str(served.out / "matte-upload.mp4"))
    events = list(c.events(c.submit(uploaded).job))
    assert events[-1].kind == "done", events[-1].body
    assert pictures(events) == frames
    # A matte that is an upload itself (params.matte "upload:ID") travels with the call too,
    # beside a file source: the actor could not read it from the server's data folder.
    half = np.zeros((144, 176, 1), np.uint8)
    half[:, :88] = 255
    matte_shape = {**shape, "channels": 1}
    assert c.upload("cluster-matte-frames", lambda n: half, **matte_shape).complete
    by_upload = p.JobSpec(input=spec.input, params={**spec.params, "matte": upload_matte("cluster-matte-frames")},
                          frames=spec.frames, output=str(served.out / "matte-uploaded.mp4"))
    events = list(c.events(c.submit(by_upload).job))
    assert events[-1].kind == "done", events[-1].body
    assert pictures(events) == frames


def test_a_node_switched_off_mid_job_the_job_finishes_elsewhere_and_a_new_node_gets_work(served, cluster):
    c = served.client()
    job = c.submit(served.spec("node-off", steps=30)).job
    until_editing(c, job)
    actor = running_on(job)
    node = next(n for n in cluster.worker_nodes if n.node_id == actor["node_id"])
    cluster.remove_node(node, allow_graceful=False)  # the machine is switched off
    events = list(c.events(job, frames=False, proxies=False))
    assert events[-1].kind == "done", events[-1].body
    requeued = [e.body for e in events if e.kind == "requeued"]
    assert requeued and "was lost" in requeued[-1].reason
    assert served.server.store.require(job).attempts == 2
    # One output, and nothing left of the interrupted attempt's staging.
    assert sorted(path.name for path in served.out.iterdir() if "node-off" in path.name) == ["node-off.mp4"]
    assert not [path for path in served.out.iterdir() if path.name.startswith(".")]
    assert frames_of(served.out / "node-off.mp4").shape[0] == 4
    # A node that joins later gets a worker, and work.
    old = set(workers())
    assert actor["name"] not in old
    cluster.add_node(**NODE)
    wait_for(lambda: served.workers() == 2)
    jobs = [c.submit(served.spec(f"after-join-{n}")).job for n in range(2)]
    assert [c.wait(j).kind for j in jobs] == ["done", "done"]
    new = {name: w for name, w in workers().items() if name not in old}
    assert len(new) == 1 and next(iter(new.values()))["jobs_done"] >= 1, workers()
