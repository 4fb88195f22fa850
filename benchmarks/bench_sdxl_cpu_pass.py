"""One UNet evaluation at SDXL base 1.0's real shape on the CPU, and the two-frame edit it implies.

Where no GPU is lent, this is the real-shape figure issue 17 asks for: SDXL's UNet with
random weights (its real configuration, float32), one call on a batch of two frames at
1024x1024 (128x128 latents) with SDXL's text and pooled conditioning, timed; then the cost
of a two-frame TokenFlow edit from the pass count of the method (inversion: 1 evaluation per
frame per step; edit: source, unconditional and conditional branch per frame per step).

    OMP_NUM_THREADS=2 python benchmarks/bench_sdxl_cpu_pass.py [--size 1024] [--steps 50]
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="frame side in pixels (latents are size/8)")
    parser.add_argument("--frames", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50, help="denoising steps of the edit the estimate is for")
    args = parser.parse_args()
    from diffusers import UNet2DConditionModel  # pyright: ignore[reportPrivateImportUsage]

    from tokenflow.tiny import SDXL_BASE_UNET_CONFIG

    started = time.perf_counter()
    unet = UNet2DConditionModel(**SDXL_BASE_UNET_CONFIG).eval()
    built = time.perf_counter() - started
    n, side = args.frames, args.size // 8
    latents = torch.randn(n, 4, side, side)
    text = torch.randn(n, 77, 2048)
    added = {"text_embeds": torch.randn(n, 1280),
             "time_ids": torch.tensor([[args.size, args.size, 0, 0, args.size, args.size]] * n, dtype=torch.float32)}
    with torch.no_grad():
        started = time.perf_counter()
        unet(latents, 500, encoder_hidden_states=text, added_cond_kwargs=added)
        seconds = time.perf_counter() - started
    per_frame = seconds / n
    evaluations = n * args.steps + 3 * n * args.steps
    print(f"SDXL base UNet ({sum(p.numel() for p in unet.parameters()) / 1e9:.2f} G parameters, float32), "
          f"built in {built:.0f} s")
    print(f"one call, {n} frames at {args.size}x{args.size}: {seconds:.1f} s ({per_frame:.1f} s per frame)")
    print(f"a {n}-frame TokenFlow edit at {args.steps} steps = {evaluations} frame evaluations "
          f"= about {evaluations * per_frame / 60:.0f} min on this CPU")


if __name__ == "__main__":
    main()
