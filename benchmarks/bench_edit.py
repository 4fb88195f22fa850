"""TokenFlow vs per-frame editing, side by side in one run, through `tokenflow edit`.

Every measured run is its own `tokenflow edit --stats` process (so process peak memory
is per run) on real footage. Prints:
  1. per frame: UNet passes by stage, seconds by stage, peak memory, first-preview share,
     and the UNet's achieved TFLOP/s against the device's peak, for TokenFlow and
     per-frame editing each cold (inversion computed) and cached (a re-edit);
  2. edit time TokenFlow / per-frame at a large working size (default 512);
  3. peak memory at 16, 32, 64, 128 frames;
  4. warp error TokenFlow / per-frame (source optical flow, OpenCV DIS).
With the tiny random model the output is noise and the warp-error ratio sits near 1
(ALGORITHM.md): it is reported, never tuned for.

    python benchmarks/bench_edit.py            # tiny model, built on the fly
    tokenflow models make-sd21-random DIR      # SD 2.1-base's shape, random weights: the real cost
    python benchmarks/bench_edit.py --model DIR --device cuda --size 512 --frames 120 --skip large,memory
    tokenflow models make-sdxl-random DIR      # SDXL base 1.0's shape (--size 1024), random weights
    python benchmarks/bench_edit.py --model DIR --device cuda --size 1024 --frames 120 --skip large,memory
    python benchmarks/bench_edit.py --family sdxl --size 1024 --frames 2 --steps 5   # tiny SDXL layout
Section 0 ("shape") counts one UNet evaluation's FLOPs at SD 2.1-base's shape (512) and
SDXL base's (1024) on PyTorch's meta device: no weights, no memory, any machine.

TFLOP/s are model FLOPs: UNet frame-evaluations (as counted by the engine) times the
FLOPs of one evaluation at the working size (counted once here with PyTorch's
FlopCounterMode), over the seconds spent in UNet stages (inversion + edit, previews
excluded). Joint attention's extra work and the correspondence search are not credited,
so this is a lower bound of the hardware's utilisation. The peak is --peak-tflops, or
the dense bf16/fp16 tensor-core peak of a GPU this script knows by name.
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
    command = [sys.executable, "-m", "cli", "edit", *args, "--stats", str(stats)]
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


# Dense bf16/fp16 tensor-core peaks (TFLOP/s, no sparsity), by device-name substring.
KNOWN_PEAKS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.0}
# Seconds of each stage that run the UNet; "preview" (VAE decodes) is nested inside "edit".
UNET_STAGES = ("inversion", "early_preview", "edit")


def device_peak(device: str, given: float | None) -> tuple[float | None, str]:
    if given:
        return given, f"{given:.0f} TFLOP/s (given)"
    if device.startswith("cuda"):
        import torch

        name = torch.cuda.get_device_name()
        for key, peak in KNOWN_PEAKS.items():
            if key in name:
                return peak, f"{peak:.0f} TFLOP/s ({name}, dense bf16)"
        return None, f"unknown for {name}: pass --peak-tflops"
    return None, "n/a on a CPU"


def _count_unet_flops(unet, working_size: tuple[int, int], device, dtype) -> float:
    """FLOPs of one call on one frame; SDXL's UNet gets its pooled text and size ids too."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    w, h = working_size
    sample = torch.randn(1, unet.config.in_channels, h // 8, w // 8, device=device, dtype=dtype)
    text = torch.randn(1, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    extra = {}
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra = {"added_cond_kwargs": {"text_embeds": torch.randn(1, pooled, device=device, dtype=dtype),
                                       "time_ids": torch.tensor([[h, w, 0, 0, h, w]], device=device, dtype=dtype)}}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        unet(sample, torch.tensor(500, device=device), encoder_hidden_states=text, **extra)
    return float(counter.get_total_flops())


def unet_flops_per_frame(model: str, device: str, working_size: tuple[int, int]) -> float:
    """FLOPs of one UNet frame-evaluation at `working_size`, counted on the real module."""
    import torch
    from diffusers import UNet2DConditionModel

    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet", torch_dtype=dtype,
                                                low_cpu_mem_usage=False).to(device).eval()
    return _count_unet_flops(unet, working_size, device, dtype)


def shape_flops() -> dict[str, dict]:
    """One UNet evaluation at SD 2.1-base's and SDXL base's real shapes and own sizes, on the meta
    device (shapes only: nothing is allocated, so it runs on any machine)."""
    import torch
    from diffusers import UNet2DConditionModel

    from tokenflow.tiny import SD21_BASE_UNET_CONFIG, SDXL_BASE_UNET_CONFIG

    out = {}
    for name, config, size, stride in (("SD 2.1-base", SD21_BASE_UNET_CONFIG, 512, 1),
                                       ("SDXL base 1.0", SDXL_BASE_UNET_CONFIG, 1024, 2)):
        with torch.device("meta"):
            unet = UNet2DConditionModel(**config)
        out[name] = {"size": size, "parameters": sum(p.numel() for p in unet.parameters()),
                     "flops": _count_unet_flops(unet, (size, size), "meta", torch.float32),
                     "finest_attention_tokens": (size // 8 // stride) ** 2}
    return out


def unet_seconds(s: dict) -> float:
    return sum(s["seconds"].get(k, 0.0) for k in UNET_STAGES) - s["seconds"].get("preview", 0.0)


def achieved_tflops(s: dict, flops_per_pass: float) -> float:
    return sum(s["unet_passes"].values()) * flops_per_pass / max(unet_seconds(s), 1e-9) / 1e12


def per_frame_table(rows: dict[str, dict], flops_per_pass: float | None = None, peak: float | None = None) -> str:
    lines = ["| run | frames | UNet passes / frame (by stage) | seconds / frame (by stage) | total s | first preview "
             "| UNet TFLOP/s (of peak) | peak memory |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in rows.items():
        n = s["frames"]
        passes = ", ".join(f"{k} {v / n:.1f}" for k, v in s["unet_passes"].items())
        seconds = ", ".join(f"{k} {v / n:.3f}" for k, v in s["seconds"].items())
        share = s["first_preview_seconds"] / s["total_seconds"] if s["first_preview_seconds"] else float("nan")
        tflops = "-"
        if flops_per_pass:
            achieved = achieved_tflops(s, flops_per_pass)
            tflops = f"{achieved:.3g}" + (f" (**{achieved / peak:.0%}**)" if peak else "")
        lines.append(
            f"| {name} | {n} | **{s['unet_passes_per_frame']:.1f}** ({passes}) | {seconds} | {s['total_seconds']:.1f} "
            f"| {s['first_preview_seconds']:.2f} s = **{share:.1%}** | {tflops} | {s['peak_memory_bytes'] / 2**20:.0f} MiB |"
        )
    return "\n".join(lines)


def targets_table(rows: dict[str, dict], flops_per_pass: float | None, peak: float | None) -> str:
    tf_cold, pf_cold = rows["TokenFlow, cold"], rows["per-frame PnP, cold"]
    tf_warm, pf_warm = rows["TokenFlow, cached inversion"], rows["per-frame PnP, cached inversion"]
    lines = ["| figure | target (120 frames, 512², 50 steps, one H100) | measured |", "| --- | --- | --- |",
             f"| TokenFlow end to end, cold (incl. model load) | <= 60 s | "
             f"{tf_cold['total_seconds'] + tf_cold['seconds'].get('load', 0):.1f} s |",
             f"| TokenFlow / per-frame, cold | <= 1.0 | {tf_cold['total_seconds'] / pf_cold['total_seconds']:.2f} |",
             f"| TokenFlow / per-frame, edit stage (cached inversion) | <= 1.0 | "
             f"{tf_warm['seconds']['edit'] / pf_warm['seconds']['edit']:.2f} |"]
    if flops_per_pass and peak:
        lines.append(f"| UNet share of the bf16 peak, TokenFlow cold | >= 40% | "
                     f"{achieved_tflops(tf_cold, flops_per_pass) / peak:.0%} |")
    lines.append(f"| keyframes attending jointly per group | all of a 120-frame clip (15) on a GPU | "
                 f"{tf_cold.get('max_joint_keyframes', '?')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or hub id (default: build the tiny random model)")
    parser.add_argument("--family", choices=("sd", "sdxl"), default="sd", help="the tiny model's layout (no --model)")
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
    parser.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak (default: known GPUs by name)")
    parser.add_argument("--max-joint-keyframes", type=int, default=0, help="passed to every TokenFlow run (0 = auto)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: shape,side,large,memory,warp")
    parser.add_argument("--json", type=Path, help="also write all figures here")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    work = Path(tempfile.mkdtemp(prefix="tokenflow-bench-"))
    model = args.model
    if model is None:
        model = str(work / "tiny-model")
        subprocess.run([sys.executable, "-m", "cli", "models", "make-tiny", "--family", args.family, model],
                       check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    common = ["--model", model, "--device", args.device]
    import torch

    accelerator = torch.cuda.get_device_name() if args.device.startswith("cuda") else "no GPU"
    figures: dict = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, "
                                f"{os.cpu_count()} cores, {accelerator}, torch {torch.__version__}, device {args.device}"}
    print(f"# bench_edit: {figures['machine']}, model {model}\n")

    if "shape" not in skip:
        shapes = shape_flops()
        figures["shape"] = shapes
        sd, xl = shapes["SD 2.1-base"], shapes["SDXL base 1.0"]
        print("## 0. One UNet frame-evaluation at the real shapes (meta device: counted, not run)\n")
        print("| model | own size | parameters | TFLOP / evaluation | tokens at the finest attention |\n"
              "| --- | --- | --- | --- | --- |")
        for name, f in shapes.items():
            print(f"| {name} | {f['size']} | {f['parameters'] / 1e9:.2f} B | {f['flops'] / 1e12:.2f} | "
                  f"{f['finest_attention_tokens']} |")
        print(f"\nSDXL at 1024 / SD 2.1 at 512: **{xl['flops'] / sd['flops']:.1f}x** the UNet work per frame and "
              f"step, {xl['finest_attention_tokens'] / sd['finest_attention_tokens']:.0f}x the joint-attention tokens\n")

    if "side" not in skip:
        clip = [str(args.clip), "--frames", f"0:{args.frames - 1}", "--size", str(args.size), "--steps", str(args.steps),
                *common, "--max-joint-keyframes", str(args.max_joint_keyframes)]

        def side(name: str, cache: str, *extra: str) -> dict:
            return tokenflow_edit([*clip, "--cache-dir", str(work / cache), *extra, "-o", str(work / name) + "/"],
                                  work, name)

        rows = {  # each method inverts in its own cache first (cold), then re-edits on it (cached)
            "TokenFlow, cold": side("tf", "cache-tf", "-p", "a watercolor painting"),
            "TokenFlow, cached inversion": side("tf2", "cache-tf", "-p", "a pencil sketch"),
            "per-frame PnP, cold": side("pf", "cache-pf", "-p", "a watercolor painting", "--method", "per-frame"),
            "per-frame PnP, cached inversion": side("pf2", "cache-pf", "-p", "a pencil sketch", "--method", "per-frame"),
        }
        figures["side_by_side"] = rows
        flops = unet_flops_per_frame(model, args.device, tuple(rows["TokenFlow, cold"]["working_size"]))
        peak, peak_text = device_peak(args.device, args.peak_tflops)
        figures["unet_flops_per_frame"] = flops
        figures["peak_tflops"] = peak
        print(f"## 1. Side by side: {args.clip.name}, {args.frames} frames, --size {args.size}, {args.steps} steps\n")
        print(f"One UNet frame-evaluation at {rows['TokenFlow, cold']['working_size']}: {flops / 1e12:.3f} TFLOP; "
              f"peak {peak_text}.\n")
        print(per_frame_table(rows, flops, peak))
        tf, pf = rows["TokenFlow, cached inversion"], rows["per-frame PnP, cached inversion"]
        print(f"\nedit-stage time TokenFlow / per-frame (both on the cached inversion): "
              f"{tf['seconds']['edit'] / pf['seconds']['edit']:.2f}\n")
        print(targets_table(rows, flops, peak) + "\n")

        if "warp" not in skip:
            source = list(read_frames(args.clip, 0, args.frames - 1))
            e_tf = warp_error(load_sequence(work / "tf"), source)
            e_pf = warp_error(load_sequence(work / "pf"), source)  # both cold, same prompt
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
