"""TokenFlow vs per-frame editing, side by side in one run, through `tokenflow edit`.

Every measured run is its own `tokenflow edit --stats` process (so process peak memory
is per run) on real footage. Prints:
  1. per frame: UNet passes by stage, seconds by stage, peak memory, first-preview share
     (TokenFlow first edit, TokenFlow re-edit with cached inversion, per-frame editing);
  2. edit time TokenFlow / per-frame at a large working size (default 512);
  3. peak memory at 16, 32, 64, 128 frames;
  4. warp error TokenFlow / per-frame (source optical flow, OpenCV DIS).
With the tiny random model the output is noise and the warp-error ratio sits near 1
(ALGORITHM.md): it is reported, never tuned for.

    python benchmarks/bench_edit.py            # tiny model, built on the fly
    python benchmarks/bench_edit.py --model DIR --device cuda --size 512 --frames 120
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bridge.media import read_frames  # noqa: E402


def tokenflow_edit(args: list[str], workdir: Path, name: str) -> dict:
    stats = workdir / f"{name}.json"
    command = [sys.executable, "-m", "server.cli", "edit", *args, "--stats", str(stats)]
    subprocess.run(command, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    return json.loads(stats.read_text())


def load_sequence(folder: Path) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))]


def warp_error(edited: list[np.ndarray], source: list[np.ndarray]) -> float:
    """Mean |E[t+1] - warp(E[t])| with the flow measured on the source video."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    errors = []
    for t in range(len(source) - 1):
        a = cv2.cvtColor(source[t], cv2.COLOR_RGB2GRAY)
        b = cv2.cvtColor(source[t + 1], cv2.COLOR_RGB2GRAY)
        flow = dis.calc(b, a, None)  # where each pixel of t+1 comes from in t
        h, w = a.shape
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        warped = cv2.remap(edited[t], grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
        margin = 4
        diff = np.abs(warped.astype(np.float32) - edited[t + 1].astype(np.float32))
        errors.append(diff[margin:-margin, margin:-margin].mean())
    return float(np.mean(errors))


def per_frame_table(rows: dict[str, dict]) -> str:
    lines = ["| run | frames | UNet passes / frame (by stage) | seconds / frame (by stage) | total s | first preview | peak memory |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in rows.items():
        n = s["frames"]
        passes = ", ".join(f"{k} {v / n:.1f}" for k, v in s["unet_passes"].items())
        seconds = ", ".join(f"{k} {v / n:.3f}" for k, v in s["seconds"].items())
        share = s["first_preview_seconds"] / s["total_seconds"] if s["first_preview_seconds"] else float("nan")
        lines.append(
            f"| {name} | {n} | **{s['unet_passes_per_frame']:.1f}** ({passes}) | {seconds} | {s['total_seconds']:.1f} "
            f"| {s['first_preview_seconds']:.2f} s = **{share:.1%}** | {s['peak_memory_bytes'] / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: build the tiny random model)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--clip", type=Path, default=REPO / "media" / "carphone_pristine.mp4")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--large-size", type=int, default=512)
    parser.add_argument("--large-frames", type=int, default=8)
    parser.add_argument("--large-steps", type=int, default=3)
    parser.add_argument("--memory-clip", type=Path, default=REPO.parent / "shared" / "media" / "bikes.mp4")
    parser.add_argument("--memory-frames", default="16,32,64,128")
    parser.add_argument("--memory-size", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma list of sections to skip: side,large,memory,warp")
    parser.add_argument("--json", type=Path, help="also write all figures here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    work = Path(tempfile.mkdtemp(prefix="tokenflow-bench-"))
    model = args.model
    if model is None:
        model = str(work / "tiny-model")
        subprocess.run([sys.executable, "-m", "server.cli", "models", "make-tiny", model], check=True, cwd=REPO,
                       stdout=subprocess.DEVNULL)
    common = ["--model", model, "--device", args.device]
    figures: dict = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                f"{os.cpu_count()} cores, device {args.device}"}
    print(f"# bench_edit: {figures['machine']}, model {model}\n")

    if "side" not in skip:
        cache = work / "cache-side"
        clip = [str(args.clip), "--frames", f"0:{args.frames - 1}", "--size", str(args.size), "--steps", str(args.steps),
                *common, "--cache-dir", str(cache)]
        rows = {
            "TokenFlow, first edit": tokenflow_edit([*clip, "-p", "a watercolor painting", "-o", str(work / "tf") + "/"], work, "tf"),
            "TokenFlow, re-edit (cached inversion)": tokenflow_edit([*clip, "-p", "a pencil sketch", "-o", str(work / "tf2") + "/"], work, "tf2"),
            "per-frame PnP (cached inversion)": tokenflow_edit([*clip, "-p", "a watercolor painting", "--method", "per-frame", "-o", str(work / "pf") + "/"], work, "pf"),
        }
        figures["side_by_side"] = rows
        print(f"## 1. Side by side: {args.clip.name}, {args.frames} frames, --size {args.size}, {args.steps} steps\n")
        print(per_frame_table(rows))
        tf, pf = rows["TokenFlow, re-edit (cached inversion)"], rows["per-frame PnP (cached inversion)"]
        print(f"\nedit-stage time TokenFlow / per-frame (both on the cached inversion): "
              f"{tf['seconds']['edit'] / pf['seconds']['edit']:.2f}\n")

        if "warp" not in skip:
            source = list(read_frames(args.clip, 0, args.frames - 1))
            e_tf = warp_error(load_sequence(work / "tf"), source)
            e_pf = warp_error(load_sequence(work / "pf"), source)
            figures["warp_error"] = {"tokenflow": e_tf, "per_frame": e_pf, "ratio": e_tf / e_pf}
            print(f"## 4. Warp error (source DIS flow): TokenFlow {e_tf:.3f}, per-frame {e_pf:.3f}, "
                  f"ratio **{e_tf / e_pf:.3f}** (random weights: expect ~1, see ALGORITHM.md)\n")

    if "large" not in skip:
        cache = work / "cache-large"
        clip = [str(args.clip), "--frames", f"0:{args.large_frames - 1}", "--size", str(args.large_size),
                "--steps", str(args.large_steps), *common, "--cache-dir", str(cache), "-p", "a watercolor painting"]
        tokenflow_edit([*clip, "-o", str(work / "warm.mp4")], work, "warm")  # fills the inversion cache
        runs = {"tokenflow": [], "per-frame": []}
        for _ in range(2):  # alternate, keep the best of two: the machine's noise hits both alike
            for method in runs:
                s = tokenflow_edit([*clip, "--method", method, "-o", str(work / f"{method}.mp4")], work, method)
                runs[method].append(s["seconds"]["edit"])
        tf, pf = min(runs["tokenflow"]), min(runs["per-frame"])
        figures["large"] = {"size": args.large_size, "frames": args.large_frames, "steps": args.large_steps,
                            "tokenflow_edit_s": tf, "per_frame_edit_s": pf, "ratio": tf / pf}
        print(f"## 2. Edit time at --size {args.large_size} ({args.large_frames} frames, {args.large_steps} steps, "
              f"cached inversion, best of 2): TokenFlow {tf:.1f} s, per-frame {pf:.1f} s, ratio **{tf / pf:.2f}**\n")

    if "memory" not in skip and args.memory_clip.exists():
        sizes = [int(n) for n in args.memory_frames.split(",")]
        memory = {}
        for n in sizes:
            s = tokenflow_edit([str(args.memory_clip), "--frames", f"0:{n - 1}", "--size", str(args.memory_size),
                                "--steps", "2", *common, "--cache-dir", str(work / f"cache-mem-{n}"),
                                "-p", "a watercolor painting", "-o", str(work / f"mem{n}.mp4")], work, f"mem{n}")
            memory[n] = s["peak_memory_bytes"]
        figures["memory"] = memory
        base = memory[sizes[0]]
        print(f"## 3. Peak memory by clip length ({args.memory_clip.name}, --size {args.memory_size})\n")
        print("| frames | peak memory | vs first |\n| --- | --- | --- |")
        for n, peak in memory.items():
            print(f"| {n} | {peak / 2**20:.0f} MiB | {peak / base:.2f}x |")
        print()

    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
