"""The server under attack (issue 20, items 4 and 11-17): real `tokenflow serve` processes.

Two servers with the fake engine (the model is not what is tested): `local`, the default
private ipc:// socket (every peer is the server's own user) with a small queue; `multi`,
CurveZMQ keys (`--curve-dir`) with two client keys, Alice and Bob, and the user's own
local key as the admin. Each test names the item it covers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import zmq

from bridge.wire import local
from bridge.wire import protocol as p
from bridge.wire.client import Client, CurveKeys, EventKind, ServerError
from server.security import init_keys
from tests.e2e.conftest import REPO, ServeProcess
from tests.e2e.test_wire_limits import FakeServe


def _spec(clip: Path, out: Path | None = None, frames: str | None = "0:3", **kw) -> p.JobSpec:
    return p.JobSpec(input=str(clip), frames=frames, output=str(out) if out else None,
                     params={"prompt": "x", "steps": 2, "kf_interval": 4, "preview_every": 2}, **kw)


def _welcome(client: Client) -> p.Welcome:
    assert client.welcome is not None, "connected clients have the server's welcome"
    return client.welcome


def _refused(client: Client, spec: p.JobSpec) -> ServerError:
    with pytest.raises(ServerError) as err:
        client.submit(spec)
    return err.value


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # a `serve` that started when it must not have
        pytest.fail(f"`tokenflow {' '.join(args)}` still ran after {timeout} s: {exc.stderr!r}")


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("local")
    # Its root as an allowed folder: the data folder and the cache lie inside one, as they do
    # inside the home folder for a user (the attack of item 14).
    s = FakeServe(root, extra=["--max-queue", "3", "--allow-output", str(root)]).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, shipped_clip) -> Path:
    """The inputs Bob and Alice may read (--allow-input)."""
    folder = tmp_path_factory.mktemp("inputs")
    shutil.copy(shipped_clip, folder / "clip.mp4")
    return folder


@dataclasses.dataclass
class Multi:
    server: ServeProcess
    keys: dict[str, CurveKeys]

    def client(self, who: str) -> Client:
        c = Client(self.server.endpoint, keys=self.keys[who], timeout=20)
        c.connect()
        return c


@pytest.fixture(scope="module")
def multi(tmp_path_factory, clip_dir):
    root = tmp_path_factory.mktemp("multi")
    keys = root / "keys"
    server_key, alice_secret = init_keys(keys)
    init_keys(root / "bob")
    shutil.copy(root / "bob" / "clients" / "client.key", keys / "clients" / "bob.key")
    admin = local.ensure_local_keys()  # the user's own key: the admin of a multi-client server
    shutil.copy(admin.clients / "client.key", keys / "clients" / "admin.key")
    server = FakeServe(root, bind="tcp://127.0.0.1:*",
                       extra=["--curve-dir", str(keys), "--allow-input", str(clip_dir)]).start()
    m = Multi(server, {
        "alice": CurveKeys.from_files(server_key, alice_secret),
        "bob": CurveKeys.from_files(server_key, root / "bob" / "client.key_secret"),
        "admin": CurveKeys.from_files(server_key, admin.client_secret),
    })
    yield m
    server.stop()


# --- item 4: --allow-output adds; --allow-output-only narrows ---


def test_allow_output_adds_to_the_default_folders(local_server, shipped_clip):
    with Client(local_server.endpoint, timeout=20) as c:
        allowed = _welcome(c).allowed_output_dirs
        assert str(local_server.out.resolve()) in allowed  # the harness's --allow-output
        assert str(Path.home().resolve()) in allowed and str((local_server.data / "outputs").resolve()) in allowed
        job = c.submit(_spec(shipped_clip)).job  # no output: DATA/outputs/JOB/..., the panel's default
        assert c.wait(job).kind is EventKind.DONE
        assert Path(c.status(job).output or "").is_relative_to(local_server.data.resolve() / "outputs")


def test_allow_output_only_narrows_to_the_given_folders(tmp_path, shipped_clip):
    server = FakeServe(tmp_path, extra=["--allow-output-only"]).start()
    try:
        with Client(server.endpoint, timeout=20) as c:
            assert _welcome(c).allowed_output_dirs == [str(server.out.resolve())]
            assert _refused(c, _spec(shipped_clip)).code == "output_not_allowed"
            assert c.submit(_spec(shipped_clip, server.out / "narrow.mp4")).job
    finally:
        server.stop()
    result = _cli("serve", "--allow-output-only", "--data-dir", str(tmp_path / "d2"), "--bind", "ipc://" + str(tmp_path / "x.sock"))
    assert result.returncode == 2 and "needs at least one --allow-output" in result.stderr, result.stderr


# --- item 11: the batch names a file; every written path is checked ---


def _raw_submit(endpoint: str, spec: dict) -> dict:
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        header = msgpack.packb({"v": 1, "type": "submit", "rid": 1, "job": None, "seq": None, "body": {"spec": spec}})
        s.send_multipart([header or b""])
        assert s.poll(20_000), "no reply"
        reply = msgpack.unpackb(s.recv_multipart()[0])
        s.close(linger=0)
        return reply
    finally:
        ctx.term()


@pytest.mark.parametrize("batch", ["y/../../outside/victim", "x/../../outside/pwned", "..", ".hidden", "a" * 65,
                                   "a\\b"])
def test_a_batch_that_is_not_a_plain_name_is_refused(local_server, shipped_clip, batch):
    spec = dataclasses.asdict(_spec(shipped_clip, destination=str(local_server.out), batch=batch))
    reply = _raw_submit(local_server.endpoint, {k: v for k, v in spec.items() if v is not None})
    assert reply["type"] == "error" and reply["body"]["field"] == "body.spec.batch", reply


def test_the_batch_summary_is_not_written_through_a_swapped_folder(local_server, shipped_clip, tmp_path):
    dest = local_server.out / "swapped"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    with Client(local_server.endpoint, timeout=20) as c:
        c.queue("pause")
        try:
            job = c.submit(_spec(shipped_clip, destination=str(dest), batch="swap-1")).job
            dest.rmdir()
            dest.symlink_to(outside)  # after the job was checked: the folder now leads outside
            assert c.cancel(job).state == "cancelled"
        finally:
            c.queue("resume")
    assert list(outside.iterdir()) == []


# --- item 13: a second server never takes over a running one's socket ---


def test_a_curve_server_does_not_take_over_a_running_servers_socket(local_server, tmp_path):
    init_keys(tmp_path / "keys")
    result = _cli("serve", "--bind", local_server.endpoint, "--curve-dir", str(tmp_path / "keys"),
                  "--data-dir", str(tmp_path / "data"), "--engine-factory", "tests.server.fake_engine:factory", timeout=30)
    assert result.returncode == 2 and "already listening" in result.stderr, result.stderr
    with Client(local_server.endpoint, timeout=20) as c:  # the first one still answers on its socket
        assert _welcome(c).models


# --- item 14: the data folder's internals are never a destination ---


def test_outputs_never_go_into_the_servers_own_folders(local_server, shipped_clip):
    data = local_server.data.resolve()
    with Client(local_server.endpoint, timeout=20) as c:
        job = c.submit(_spec(shipped_clip, local_server.out / "first.mp4")).job
        assert c.wait(job).kind is EventKind.DONE
        for target in (data / "jobs" / job / "my_render.mp4", data / "jobs" / job / "frames" / "%08d.png",
                       data / "jobs.sqlite3.mp4", local_server.cache.resolve() / "x.mp4"):
            err = _refused(c, _spec(shipped_clip, target, overwrite=True))
            assert err.code == "output_not_allowed" and "server keeps its own files" in err.message, (target, err)
        assert c.submit(_spec(shipped_clip, data / "outputs" / "mine.mp4")).job  # DATA/outputs stays a destination


def test_allow_output_inside_the_data_folder_is_refused_at_start(tmp_path):
    result = _cli("serve", "--data-dir", str(tmp_path / "data"), "--allow-output", str(tmp_path / "data" / "jobs"),
                  "--bind", "ipc://" + str(tmp_path / "s.sock"))
    assert result.returncode == 2 and "the server's own files" in result.stderr, result.stderr


# --- item 15: a batch is queued whole or not at all ---


def test_queue_add_queues_nothing_when_the_batch_does_not_fit(local_server, shipped_clip, tmp_path):
    rows = tmp_path / "six.csv"
    rows.write_text("input,range,prompt\n" + "".join(f"{shipped_clip},0:3,row {i}\n" for i in range(6)))
    fits: list[str] = []
    with Client(local_server.endpoint, timeout=20) as c:
        c.queue("pause")
        try:
            before = len(c.list_jobs(states=["queued"]))
            result = _cli("queue", "--server", local_server.endpoint, "add", str(rows), "-d", str(local_server.out))
            assert result.returncode != 0 and "room for 3" in result.stderr, result.stderr
            assert len(c.list_jobs(states=["queued"])) == before  # nothing queued
            # the transaction itself (not only the check): a batch's first job needs room for all of it
            spec = _spec(shipped_clip, destination=str(local_server.out), batch="big-1", batch_jobs=4)
            assert _refused(c, spec).code == "queue_full"
            fits = [c.submit(dataclasses.replace(spec, batch="fits-1", batch_jobs=3, row=i)).job for i in range(3)]
            assert len(c.list_jobs(states=["queued"])) == before + 3
        finally:
            for job in fits:
                c.cancel(job)
            c.queue("resume")


# --- item 17, the local server's share ---


def test_dry_run_numbers_duplicate_rows_like_the_real_add(local_server, shipped_clip, tmp_path):
    rows = tmp_path / "dupes.csv"
    rows.write_text("input,range,prompt\n" + f"{shipped_clip},0:3,same\n" * 3)
    args = ["queue", "--server", local_server.endpoint, "add", str(rows), "-d", str(local_server.out / "dupes"),
            "--template", "{clip}_{prompt}"]
    dry = _cli(*args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    shown = [line.split(": ", 1)[1] for line in dry.stdout.splitlines() if line.startswith("  ")]
    real = _cli(*args)
    assert real.returncode == 0, real.stderr
    queued = [line.split(": ", 1)[1] for line in real.stdout.splitlines() if line.startswith("  ")]
    assert shown == queued and len(set(queued)) == 3, (shown, queued)


def test_folders_fifos_and_devices_are_reported_as_what_they_are(local_server, tmp_path, shipped_clip):
    fifo = tmp_path / "pipe.mp4"
    os.mkfifo(fifo)
    with Client(local_server.endpoint, timeout=20) as c:
        for path, words in ((tmp_path, "is a folder"), (fifo, "is a FIFO"), (Path("/dev/null"), "is a device")):
            with pytest.raises(ServerError) as err:
                c.probe(str(path))
            assert words in err.value.message, err.value
            assert words in _refused(c, _spec(Path(path), local_server.out / "f.mp4")).message
        with pytest.raises(ServerError) as err:
            c.probe(str(tmp_path / "missing.mp4"))
        assert err.value.code == "not_found"


# --- items 12 and 17: one client of a multi-client server against another ---


def test_overwrite_replaces_only_the_same_clients_outputs(multi, clip_dir):
    alice, bob = multi.client("alice"), multi.client("bob")
    try:
        target = multi.server.out / "alice.mp4"
        job = alice.submit(_spec(clip_dir / "clip.mp4", target)).job
        assert alice.wait(job).kind is EventKind.DONE
        before = target.read_bytes()
        err = _refused(bob, _spec(clip_dir / "clip.mp4", target, overwrite=True))
        assert err.code == "output_exists" and "not written by a job of this client" in err.message
        assert target.read_bytes() == before
        again = alice.submit(_spec(clip_dir / "clip.mp4", target, frames="0:2", overwrite=True)).job  # her own: fine
        assert alice.wait(again).kind is EventKind.DONE
    finally:
        alice.close()
        bob.close()


def test_probe_and_inputs_are_limited_to_the_allowed_input_folders(multi, clip_dir, tmp_path):
    secret = tmp_path / "secret.mp4"
    shutil.copy(clip_dir / "clip.mp4", secret)
    bob = multi.client("bob")
    try:
        answers = []
        for path in (secret, tmp_path / "missing.mp4", Path("/etc/shadow"), clip_dir / ".." / secret.name):
            with pytest.raises(ServerError) as err:
                bob.probe(str(path))
            answers.append(err.value.code)
        assert answers == ["input_not_allowed"] * 4  # the same answer whether it exists or not
        assert _refused(bob, _spec(secret, multi.server.out / "b.mp4")).code == "input_not_allowed"
        # A matte is read from the server's disk like the input: the same folders, the same answer.
        matted = _spec(clip_dir / "clip.mp4", multi.server.out / "b.mp4")
        for matte in (secret, tmp_path / "missing.mp4"):
            matted.params["matte"] = str(matte)
            err = _refused(bob, matted)
            assert (err.code, err.field) == ("input_not_allowed", "body.spec.params.matte"), err
        assert bob.probe(str(clip_dir / "clip.mp4"))["frame_count"] > 0  # inside --allow-input
    finally:
        bob.close()
    admin = multi.client("admin")  # the server's own user reads anywhere
    try:
        assert admin.probe(str(secret))["frame_count"] > 0
    finally:
        admin.close()


def test_client_tokens_are_scoped_to_the_client(multi, clip_dir):
    alice, bob = multi.client("alice"), multi.client("bob")
    try:
        spec = _spec(clip_dir / "clip.mp4", multi.server.out / "token-{job}.mp4", client_token="same-token")
        mine = alice.submit(spec).job
        assert alice.submit(spec).job == mine  # idempotent for Alice
        theirs = bob.submit(spec).job
        assert theirs != mine and bob.status(theirs).output
        for c, job in ((alice, mine), (bob, theirs)):
            assert c.wait(job).kind is EventKind.DONE
    finally:
        alice.close()
        bob.close()


def test_only_the_admin_key_pauses_the_queue(multi):
    bob = multi.client("bob")
    try:
        for action in ("pause", "resume"):
            with pytest.raises(ServerError) as err:
                bob.queue(action)
            assert err.value.code == "forbidden"
        assert bob.queue().paused is False  # reading the state is fine
    finally:
        bob.close()
    admin = multi.client("admin")
    try:
        assert admin.queue("pause").paused is True
        assert admin.queue("resume").paused is False
    finally:
        admin.close()


def test_summary_file_name_is_the_batch(local_server, shipped_clip):
    """A plain batch name still gets its summary beside the outputs (the check keeps the feature)."""
    with Client(local_server.endpoint, timeout=20) as c:
        job = c.submit(_spec(shipped_clip, destination=str(local_server.out / "plain"), batch="plain-1",
                             batch_jobs=1)).job
        assert c.wait(job).kind is EventKind.DONE
    summary = json.loads((local_server.out / "plain" / "tokenflow-batch-plain-1.json").read_text())
    assert summary["batch"] == "plain-1"


def test_read_serves_only_the_file_the_job_wrote(local_server, shipped_clip, tmp_path):
    """Item 17: a movie replaced by a hard link to another file of the same size, or a sequence
    folder swapped for a link to a copy, is `output_changed`, never the other file's bytes."""
    with Client(local_server.endpoint, timeout=20) as c:
        movie = c.submit(_spec(shipped_clip, local_server.out / "ident.mp4")).job
        seq = c.submit(dataclasses.replace(_spec(shipped_clip, frames="0:1"),
                                           output=str(local_server.out / "identseq") + "/")).job
        assert c.wait(movie).kind is EventKind.DONE and c.wait(seq).kind is EventKind.DONE
        (info,) = c.files(movie).files
        path = local_server.out / info.name
        other = tmp_path / "other.bin"
        other.write_bytes(b"\0" * info.size)  # someone else's file, the same size
        path.unlink()
        os.link(other, path)
        with pytest.raises(ServerError) as err:
            c.read(movie, info.name, 0, 10)
        assert err.value.code == "output_changed"
        first = c.files(seq).files[0]
        folder = local_server.out / "identseq"
        copy = tmp_path / "copy"
        shutil.copytree(folder, copy)
        shutil.rmtree(folder)
        folder.symlink_to(copy)
        with pytest.raises(ServerError) as err:
            c.read(seq, first.name, 0, 10)
        assert err.value.code == "output_changed"


def _truncated_fast_start_mp4(path: Path, frames: int = 96) -> Path:
    """An H.264 MP4 with its index first (`movflags=faststart`), cut to half its size: the index
    still promises every frame; the data holds about half of them."""
    import av
    import numpy as np

    whole = path.with_name("whole.mp4")
    rng = np.random.default_rng(0)
    with av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for _ in range(frames):  # noise: every frame about the same size, so half the bytes is half the frames
            image = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(image))
        out.mux(stream.encode())
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_a_truncated_fast_start_mp4_counts_the_frames_it_has(local_server, tmp_path):
    """Item 17: accepted for 96 frames where `probe` said 46, then failed at run time. Now `probe`
    and submit count the frames that decode, and the whole clip runs to the end."""
    clip = _truncated_fast_start_mp4(tmp_path / "cut.mp4")
    with Client(local_server.endpoint, timeout=20) as c:
        count = c.probe(str(clip))["frame_count"]
        assert 30 <= count <= 60
        err = _refused(c, _spec(clip, local_server.out / "cut.mp4", frames="0:95"))
        assert err.code == "bad_range" and str(count) in err.message, err
        job = c.submit(_spec(clip, local_server.out / "cut-all.mp4", frames=None)).job
        assert c.wait(job).kind is EventKind.DONE
