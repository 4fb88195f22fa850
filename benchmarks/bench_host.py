"""The host ceiling: how fast a 1080p job runs when the denoiser costs nothing (or D per frame).

    python benchmarks/bench_host.py [--frames 120] [--denoise-ms 0] [--modes edit,serve] [--json out.json]

Stub-denoiser mode, for benchmarks only: a real engine on a tiny random model
(`tokenflow/tiny.py`) whose UNet is replaced by an instant function with the same
shapes (zeros), optionally sleeping `--denoise-ms` per frame of the job (spread over
its UNet calls). Everything else is the real thing: the 1080p source is decoded,
digested and resized, the VAE encodes and decodes, the picture is resized back to
1080p and converted to the output's bit depth, and the output is written as ProRes
422 HQ; through the server the frames are also stored and proxied.

Figures, in one run:
- the source's decode time alone and the output's encode time alone (the same frames,
  as float RGB as the engine hands them over);
- `tokenflow edit` in-process (cli.main with the stub engine) and a real `tokenflow serve`
  subprocess (`--engine-factory benchmarks.bench_host:stub_factory`) with a client
  that submits and waits for `done` (no frames subscribed: the job, not the wire);
- frames/s end to end, the denoiser time (the stub's own time), and the host overhead
  ratio = (job time - denoiser time) / (decode alone + encode alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WIDTH, HEIGHT = 1920, 1080
ENV_MODEL = "TOKENFLOW_BENCH_STUB_MODEL"
ENV_DENOISE = "TOKENFLOW_BENCH_STUB_DENOISE_S"  # seconds per frame of the job
ENV_STEPS = "TOKENFLOW_BENCH_STUB_STEPS"


# --- the stub denoiser ---


class StubUNet:
    """Replaces a UNet's forward: zeros of the input's shape, after `per_row` seconds per batch row.

    A frame of a cold job passes the UNet `steps` times in inversion and `3 * steps` in
    the edit (three branches), so `per_row = D / (4 * steps)` makes D per frame.
    """

    def __init__(self, per_row: float):
        self.per_row = per_row
        self.seconds = 0.0
        self._lock = threading.Lock()

    def __call__(self, sample, timestep, encoder_hidden_states=None, **kwargs):
        import torch

        started = time.perf_counter()
        if self.per_row:
            time.sleep(self.per_row * sample.shape[0])
        out = SimpleNamespace(sample=torch.zeros_like(sample))
        with self._lock:
            self.seconds += time.perf_counter() - started
        return out


def stub_engine(model_dir: str, denoise_s: float, steps: int, cache_dir: str | None = None, engine_class=None):
    from tokenflow.engine import Engine

    engine = (engine_class or Engine)(model_dir, device="cpu", cache_dir=cache_dir)
    stub = StubUNet(denoise_s / (4 * max(1, steps)))
    engine.model.unet.forward = stub  # nn.Module.__call__ runs the instance's forward
    engine.stub = stub  # type: ignore[attr-defined]
    return engine


def stub_factory(model: str):
    """`tokenflow serve --engine-factory benchmarks.bench_host:stub_factory` (settings from the environment)."""
    return stub_engine(os.environ[ENV_MODEL], float(os.environ.get(ENV_DENOISE, "0")),
                       int(os.environ.get(ENV_STEPS, "2")), os.environ.get("TOKENFLOW_BENCH_STUB_CACHE"))


# --- the source, and the two halves of the host work measured alone ---


def make_source(path: Path, frames: int, seed: int = 0) -> Path:
    """A 1080p ProRes 422 HQ clip with gradients, a moving square and grain (not a flat pattern)."""
    import av

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    grain = [rng.normal(0, 6, (HEIGHT, WIDTH, 3)).astype(np.float32) for _ in range(4)]
    partial = path.with_name(f".{path.name}.partial")  # an interrupted run leaves no broken source
    with av.open(str(partial), "w", format="mov") as container:
        stream = container.add_stream("prores_ks", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv422p10le"
        stream.options = {"profile": "3"}
        for i in range(frames):
            img = np.stack([(x / 8 + 3 * i) % 256, (y / 5 + 2 * i) % 256, (x + y) / 12 % 256], axis=-1)
            x0 = (40 * i) % (WIDTH - 300)
            img[400:700, x0:x0 + 300] = (230, 40, 60)
            img = np.clip(img + grain[i % 4], 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    partial.rename(path)
    return path


def decode_alone(source: Path, frames: int) -> float:
    from bridge.media import read_frames

    started = time.perf_counter()
    count = sum(1 for _ in read_frames(source, 0, frames - 1))
    assert count == frames
    return time.perf_counter() - started


def encode_alone(source: Path, frames: int, out: Path, preset: str) -> float:
    """The output encoded from float RGB (what the engine hands the writer), four distinct pictures cycled."""
    from bridge.media import open_writer, probe, read_frames

    pictures = [f.astype(np.float32) / 255.0 for _, f in zip(range(4), read_frames(source, 0, 3))]
    writer = open_writer(out, probe(source), 0, preset=preset, audio=False)
    started = time.perf_counter()
    for i in range(frames):
        writer.write(pictures[i % 4])
    writer.close()
    return time.perf_counter() - started


# --- the two ways a job runs ---


def run_edit(root: Path, source: Path, model_dir: str, frames: int, args) -> dict:
    import cli.main
    import tokenflow.engine

    made: list = []
    real = tokenflow.engine.Engine

    def patched(*a, **kw):
        engine = stub_engine(model_dir, args.denoise_ms / 1000, args.steps, str(root / "edit-cache"), real)
        made.append(engine)
        return engine

    out, stats_path = root / "edit_out.mov", root / "edit_stats.json"
    tokenflow.engine.Engine = patched  # type: ignore[misc]
    try:
        started = time.perf_counter()
        code = cli.main.main(["edit", str(source), "-p", "a watercolour painting", "-o", str(out),
                              "--format", args.preset, "--frames", f"0:{frames - 1}", "--size", str(args.size),
                              "--steps", str(args.steps), "--model", model_dir, "--device", "cpu",
                              "--stats", str(stats_path)])
        total = time.perf_counter() - started
    finally:
        tokenflow.engine.Engine = real  # type: ignore[misc]
    assert code == 0, code
    stats = json.loads(stats_path.read_text())
    load = stats["seconds"].get("load", 0.0)
    return {"job_s": total - load, "denoiser_s": made[0].stub.seconds, "stages_s": stats["seconds"]}


def run_serve(root: Path, source: Path, model_dir: str, frames: int, args) -> dict:
    from bridge.wire import protocol as p
    from bridge.wire.client import Client, EventKind

    work = root / "serve"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TOKENFLOW_RUNTIME_DIR": str(work / "run"),
           ENV_MODEL: model_dir, ENV_DENOISE: str(args.denoise_ms / 1000), ENV_STEPS: str(args.steps),
           "TOKENFLOW_BENCH_STUB_CACHE": str(work / "cache")}
    log = work / "serve.log"
    cmd = [sys.executable, "-m", "cli", "serve", "--model", model_dir, "--device", "cpu",
           "--data-dir", str(work / "data"), "--cache-dir", str(work / "cache"), "--allow-output", str(root),
           "--engine-factory", "benchmarks.bench_host:stub_factory"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        import re

        deadline = time.monotonic() + 300
        endpoint = None
        while endpoint is None:
            m = re.search(r"listening on ((?:tcp|ipc)://\S+)", log.read_text())
            endpoint = m.group(1) if m else None
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        client = Client(endpoint, timeout=600)
        client.connect()
        while client.hello().engine_state == "loading":
            time.sleep(0.2)
        spec = p.JobSpec(input=str(source), output=str(root / "serve_out.mov"), frames=f"0:{frames - 1}",
                         preset=args.preset,
                         params={"prompt": "a watercolour painting", "short_side": args.size, "steps": args.steps})
        started = time.perf_counter()
        job = client.submit(spec).job
        done = None
        for event in client.events(job, 2, frames=False, proxies=False):
            if event.terminal:
                done = event
                break
        total = time.perf_counter() - started
        client.close()
    finally:
        proc.terminate()
        proc.wait(60)
    assert done is not None and done.kind is EventKind.DONE, (done and done.body, log.read_text()[-2000:])
    assert isinstance(done.body, p.Done)
    seconds = done.body.stats["seconds"]
    # The stub's own time is in the server process; the denoiser's stages bound it from above
    # (with an instant stub they are the loops' own bookkeeping, which is host work too).
    denoiser = frames * args.denoise_ms / 1000
    return {"job_s": total, "denoiser_s": denoiser, "stages_s": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--denoise-ms", type=float, default=0.0, help="stub denoiser cost per frame (sleep)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--preset", default="prores_422_hq")
    parser.add_argument("--modes", default="edit,serve")
    parser.add_argument("--work", type=Path, help="keep the source here between runs (made once)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from tokenflow.tiny import make_tiny_pipeline_dir

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        work = args.work or root
        work.mkdir(parents=True, exist_ok=True)
        source = work / f"source_{args.frames}.mov"
        if not source.exists():
            print(f"making a {args.frames}-frame 1080p ProRes source ...", flush=True)
            make_source(source, args.frames)
        model_dir = work / "tiny-model"
        if not (model_dir / "model_index.json").exists():
            make_tiny_pipeline_dir(model_dir)
        decode_s = decode_alone(source, args.frames)
        encode_s = encode_alone(source, args.frames, root / "alone.mov", args.preset)
        result: dict = {"frames": args.frames, "denoise_ms_per_frame": args.denoise_ms, "preset": args.preset,
                        "size": args.size, "steps": args.steps, "decode_alone_s": round(decode_s, 2),
                        "encode_alone_s": round(encode_s, 2)}
        print(f"alone: decode {decode_s:.2f} s, encode {encode_s:.2f} s ({args.frames} frames)", flush=True)
        for mode in args.modes.split(","):
            run = {"edit": run_edit, "serve": run_serve}[mode]
            figures = run(root, source, str(model_dir), args.frames, args)
            host = figures["job_s"] - figures["denoiser_s"]
            result[mode] = {
                "job_s": round(figures["job_s"], 2), "fps": round(args.frames / figures["job_s"], 2),
                "denoiser_s": round(figures["denoiser_s"], 2),
                "host_ratio": round(host / (decode_s + encode_s), 2),
                "job_over_max_D_host": round(figures["job_s"] / max(figures["denoiser_s"], decode_s + encode_s), 2),
                "stages_s": {k: round(v, 2) for k, v in figures["stages_s"].items()},
            }
            print(mode, json.dumps(result[mode]), flush=True)
        if args.json:
            args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
