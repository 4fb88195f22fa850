"""Server benchmarks: wire throughput, time to first proxy, server overhead.

    python benchmarks/bench_server.py [--model DIR] [--device cpu|cuda] [--steps 10] [--frames 0:15]
    python benchmarks/bench_server.py --slow-subscribers 8 [--hd-frames 48] [--code OLD_CHECKOUT --code .]

1. Full-HD frames per second over the wire: a `tokenflow serve` process with a
   pass-through engine (no model: every decoded 1920x1080 frame comes straight back)
   streams a synthetic full-HD clip to a subscribed client, live and replayed.
2. The same edit through the server (submit -> done, as a client sees it, every frame
   streamed at full resolution) and in-process (engine.edit + the output writer, as
   `tokenflow edit` does): the server's overhead. Cold (inversion computed) and warm
   (inversion cache hit) runs.
3. Time to the first proxy as a fraction of the job, from the same server runs.
4. (--slow-subscribers N) the server's memory while N clients subscribe to a 1080p
   job and read nothing: the per-client byte budget at work.

Without --model a tiny random model is built (CPU-sized figures; on a GPU pass a real
model folder). Prints the figures; --json FILE also writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.wire import protocol as p  # noqa: E402
from bridge.wire.client import Client, EventKind  # noqa: E402

CLIP = REPO / "media" / "carphone_pristine.mp4"


# --- the pass-through engine (for the wire benchmark; loaded by the server via --engine-factory) ---


class PassThrough:
    def edit(self, frames, n_frames, params, on_event=None, should_cancel=lambda: False, matte=None):
        from tokenflow.events import FrameReady

        for i, frame in enumerate(frames):
            on_event(FrameReady(i, frame))

        class _Stats:
            def to_dict(self):
                return {"frames": n_frames}

        return _Stats()


def passthrough_factory(model: str) -> PassThrough:
    return PassThrough()


# --- helpers ---


def make_hd_clip(path: Path, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        y, x = np.mgrid[0:1080, 0:1920]
        for i in range(frames):
            img = np.stack([(x + 8 * i) % 256, (y + 4 * i) % 256, (x + y) % 256], axis=-1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


class Serve:
    def __init__(self, root: Path, model: str, device: str, extra: list[str] = ()):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / "serve.log"
        # The default endpoint (a private ipc:// socket), in a runtime folder of this run's own.
        cmd = [sys.executable, "-m", "cli", "serve", "--model", model,
               "--device", device, "--data-dir", str(root / "data"), "--cache-dir", str(root / "cache"),
               "--allow-output", str(root), *extra]
        env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENFLOW_RUNTIME_DIR": str(root / "run")}
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            m = re.search(r"listening on ((?:tcp|ipc)://\S+)", self.log.read_text())
            if m:
                self.endpoint = m.group(1)
                return
            if self.proc.poll() is not None:
                raise SystemExit(self.log.read_text())
            time.sleep(0.1)
        raise SystemExit("server did not start")

    def client(self) -> Client:
        c = Client(self.endpoint, timeout=120)
        c.connect()
        while c.hello().engine_state == "loading":  # time jobs, not the model load
            time.sleep(0.2)
        return c

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def run_job(client: Client, spec: p.JobSpec) -> dict:
    t0 = time.perf_counter()
    job = client.submit(spec).job
    first_proxy = first_frame = None
    nbytes = frames = 0
    for e in client.events(job, 2):
        now = time.perf_counter() - t0
        if e.kind is EventKind.PROXY and first_proxy is None:
            first_proxy = now
        if e.kind is EventKind.FRAME:
            first_frame = first_frame or now
            frames += 1
            nbytes += len(e.data)
        if e.terminal:
            assert e.kind is EventKind.DONE, e.body
            done = e
    total = time.perf_counter() - t0
    return {"job": job, "total_s": total, "first_proxy_s": first_proxy, "first_frame_s": first_frame,
            "frames": frames, "bytes": nbytes, "engine_s": done.body.stats.get("total_seconds"),
            "inversion_cached": done.body.stats.get("inversion_cached")}


def replay(client: Client, job: str) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    frames = nbytes = 0
    for e in client.events(job, 1):
        if e.kind is EventKind.FRAME:
            frames += 1
            nbytes += len(e.data)
    return time.perf_counter() - t0, frames, nbytes


# --- the benchmarks ---


def bench_wire(root: Path, hd_frames: int) -> dict:
    clip = make_hd_clip(root / "hd.mp4", hd_frames)
    serve = Serve(root / "wire", "none", "cpu", ["--engine-factory", "benchmarks.bench_server:passthrough_factory"])
    try:
        c = serve.client()
        spec = p.JobSpec(input=str(clip), params={"prompt": "pass-through"}, output=str(root / "wire" / "hd_out.mp4"))
        live = run_job(c, spec)
        replay_s, frames, nbytes = replay(c, live["job"])
        t0 = time.perf_counter()
        fetched = sum(1 for _ in c.fetch_frames(live["job"]))
        fetch_s = time.perf_counter() - t0
        c.close()
    finally:
        serve.stop()
    mb = 1920 * 1080 * 3 / 1e6
    return {
        "hd_frames": hd_frames,
        "live_job_s": round(live["total_s"], 3),
        "live_fps_incl_decode_encode": round(live["frames"] / live["total_s"], 1),
        "replay_fps": round(frames / replay_s, 1),
        "replay_MBps": round(frames * mb / replay_s, 1),
        "fetch_fps": round(fetched / fetch_s, 1),
    }


def _rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def bench_slow_subscribers(root: Path, hd_frames: int, subscribers: int, code: Path = REPO) -> dict:
    """Server memory while `subscribers` clients subscribe to a 1080p job and read nothing.

    Raw DEALER sockets (no bridge.wire.client), so the same run measures an older checkout
    (`--code DIR`): each subscriber keeps its own receive queue at one message and its
    kernel buffer small, heartbeats (alive, as the protocol asks), and reads nothing
    until the job is done; then all of them read everything. Figures: the server's
    resident memory before the job (VmRSS) and its peak (VmHWM), from /proc.
    """
    import msgpack
    import zmq

    clip = root / "hd.mp4" if (root / "hd.mp4").exists() else make_hd_clip(root / "hd.mp4", hd_frames)
    work = root / f"slow-{code.name}"
    work.mkdir(parents=True, exist_ok=True)
    private = (code / "bridge" / "local.py").exists()  # the default is a private ipc socket there
    bind = [] if private else ["--bind", "tcp://127.0.0.1:*"]
    cmd = [sys.executable, "-m", "cli", "serve", *bind, "--model", "none", "--device", "cpu",
           "--data-dir", str(work / "data"), "--cache-dir", str(work / "cache"), "--allow-output", str(work),
           "--engine-factory", "benchmarks.bench_server:passthrough_factory"]
    env = {**os.environ, "PYTHONPATH": f"{code}:{REPO}", "HF_HUB_OFFLINE": "1", "TOKENFLOW_RUNTIME_DIR": str(work / "run")}
    log = work / "serve.log"
    proc = subprocess.Popen(cmd, cwd=code, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    ctx = zmq.Context()
    socks = []
    try:
        deadline = time.monotonic() + 120
        while not (m := re.search(r"listening on ((?:tcp|ipc)://\S+)", log.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        endpoint = m.group(1)

        def dealer(slow: bool) -> zmq.Socket:
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            if slow:
                s.setsockopt(zmq.RCVHWM, 1)
                s.setsockopt(zmq.RCVBUF, 4096)
            s.connect(endpoint)
            return s

        def msg(type_: str, rid: int | None, job: str | None = None, **body) -> list[bytes]:
            return [msgpack.packb({"v": 1, "type": type_, "rid": rid, "job": job, "seq": None, "body": body})]

        ctl = dealer(False)
        ctl.send_multipart(msg("hello", 1, client="bench", versions=[1]))
        ctl.poll(60_000)
        ctl.recv_multipart()
        time.sleep(1.0)
        before = _rss_kib(proc.pid, "VmRSS")
        spec = {"input": str(clip), "params": {"prompt": "pass-through"}, "output": str(work / "out.mp4")}
        ctl.send_multipart(msg("submit", 2, spec=spec))
        ctl.poll(60_000)
        job = msgpack.unpackb(ctl.recv_multipart()[0])["job"]
        for _ in range(subscribers):
            s = dealer(True)
            s.send_multipart(msg("subscribe", 1, job, from_seq=1))
            socks.append(s)
        t0 = time.monotonic()
        state = "queued"
        rss_series = []
        while state not in ("done", "failed", "cancelled"):
            for s in socks:
                s.send_multipart(msg("heartbeat", None))
            ctl.send_multipart(msg("status", 3, job))
            while True:
                ctl.poll(60_000)
                h = msgpack.unpackb(ctl.recv_multipart()[0])
                if h.get("rid") == 3:
                    state = h["body"]["info"]["state"]
                    break
            rss_series.append(_rss_kib(proc.pid, "VmRSS"))
            time.sleep(0.25)
        job_s = time.monotonic() - t0
        time.sleep(2.0)  # what is queued for the subscribers now stays queued
        held = _rss_kib(proc.pid, "VmRSS")
        peak = _rss_kib(proc.pid, "VmHWM")
        frames_read = stalled = 0
        for s in socks:  # now they read: every frame should arrive
            while True:
                if not s.poll(30_000):
                    stalled += 1  # nothing for 30 s: the server dropped or forgot this subscriber
                    break
                h = msgpack.unpackb(s.recv_multipart()[0])
                frames_read += h["type"] == "frame"
                if h["type"] in ("done", "failed", "cancelled"):
                    break
        return {"code": str(code), "hd_frames": hd_frames, "subscribers": subscribers, "job_s": round(job_s, 1),
                "rss_before_MiB": round(before / 1024), "rss_peak_MiB": round(peak / 1024),
                "rss_held_after_job_MiB": round(held / 1024),
                "growth_peak_MiB": round((peak - before) / 1024), "frames_read": frames_read,
                "frames_expected": hd_frames * subscribers, "subscribers_stalled": stalled,
                "server_alive": proc.poll() is None}
    finally:
        for s in socks:
            s.close(linger=0)
        ctx.destroy(linger=0)
        proc.terminate()
        proc.wait(60)


def bench_edit(root: Path, model: str, device: str, frames: str, steps: int, size: int) -> dict:
    from bridge import media
    from server.quiet import quiet_libraries

    quiet_libraries()
    from bridge.wire.edit_params import complete
    from tokenflow.engine import Engine
    from tokenflow.params import EditParams

    params = {"prompt": "a watercolor painting", "steps": steps, "short_side": size}
    info = media.probe(CLIP)
    first, last = media.parse_frame_range(frames, info.frame_count)
    n = last - first + 1

    # In-process, as `tokenflow edit` does it (model loaded before timing).
    engine = Engine(model, device=device, cache_dir=root / "inproc-cache")
    inproc = []
    for run in ("cold", "warm"):
        out = root / f"inproc_{run}.mp4"
        t0 = time.perf_counter()
        writer = media.open_writer(out, info, first)
        engine.edit(media.read_frames(CLIP, first, last), n, EditParams(**complete(params)),
                    on_event=lambda e, writer=writer: writer.write(e.image) if hasattr(e, "image") else None)
        writer.close()
        inproc.append(time.perf_counter() - t0)
    del engine

    serve = Serve(root / "edit", model, device)
    try:
        c = serve.client()
        served = [run_job(c, p.JobSpec(input=str(CLIP), params=params, frames=frames,
                                       output=str(root / "edit" / f"served_{run}.mp4"))) for run in ("cold", "warm")]
        c.close()
    finally:
        serve.stop()
    result = {"frames": n, "steps": steps, "size": size, "model": model, "device": device}
    for i, run in enumerate(("cold", "warm")):
        s = served[i]
        result[run] = {
            "in_process_s": round(inproc[i], 3),
            "server_s": round(s["total_s"], 3),
            "overhead_pct": round(100 * (s["total_s"] - inproc[i]) / inproc[i], 1),
            "first_proxy_s": round(s["first_proxy_s"], 3),
            "first_proxy_fraction_pct": round(100 * s["first_proxy_s"] / s["total_s"], 1),
            "first_full_frame_s": round(s["first_frame_s"], 3),
            "inversion_cached": s["inversion_cached"],
        }
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="model folder or hub id (default: a tiny random model built now)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--frames", default="0:15")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--hd-frames", type=int, default=48)
    ap.add_argument("--skip-wire", action="store_true")
    ap.add_argument("--slow-subscribers", type=int, metavar="N",
                    help="only measure server memory under N subscribers of a 1080p job that read nothing")
    ap.add_argument("--code", type=Path, action="append",
                    help="with --slow-subscribers: run the server from this checkout (repeat to compare; "
                    "default: this one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    figures = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.slow_subscribers:
            figures["slow_subscribers"] = [
                bench_slow_subscribers(root, args.hd_frames, args.slow_subscribers, code.resolve())
                for code in (args.code or [REPO])
            ]
            for row in figures["slow_subscribers"]:
                print("slow subscribers:", json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(figures, indent=2))
            return 0
        if not args.skip_wire:
            figures["wire"] = bench_wire(root, args.hd_frames)
            print("wire:", json.dumps(figures["wire"]), flush=True)
        model = args.model
        if model is None:
            from tokenflow.tiny import make_tiny_pipeline_dir

            model = str(make_tiny_pipeline_dir(root / "tiny-model"))
        figures["edit"] = bench_edit(root, model, args.device, args.frames, args.steps, args.size)
        print("edit:", json.dumps(figures["edit"]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
