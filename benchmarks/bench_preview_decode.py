"""Preview decode: TAESD (diffusers AutoencoderTiny) against the full SD VAE decoder, at 512 px;
with --family sdxl, TAESDXL against SDXL's VAE at 1024 px.

Both at their real configurations with random weights (speed does not depend on the
weights): SD 2.1-base's VAE (tokenflow/tiny.py's SD shape; SDXL's VAE has the same
layers, run in fp32 as SDXL's must be) and AutoencoderTiny's defaults, which are
TAESD's and TAESDXL's configuration alike (tokenflow/preview_decoder.py). One run, side
by side, the same latents (size / 8 on a side).

    python benchmarks/bench_preview_decode.py [--family sd|sdxl] [--size PX] [--frames 4] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def timed(decode, latents: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Best of `repeats`, seconds per frame (after one warm-up call)."""
    decode(latents[:1])
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        decode(latents)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return best / latents.shape[0]


@torch.no_grad()
def main() -> int:
    from diffusers import AutoencoderTiny  # pyright: ignore[reportPrivateImportUsage]  # diffusers' documented API

    from tokenflow.tiny import _sd_vae

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--family", choices=("sd", "sdxl"), default="sd")
    parser.add_argument("--size", type=int, default=0, help="working size in px (default: the family's, 512 or 1024)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    size = args.size or (1024 if args.family == "sdxl" else 512)
    device = torch.device(args.device)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    vae = _sd_vae((128, 256, 512, 512), layers_per_block=2, norm_num_groups=32, sample_size=size,
                  scaling_factor=0.13025 if args.family == "sdxl" else 0.18215).to(device).eval()
    taesd = AutoencoderTiny().to(device=device, dtype=dtype).eval()  # pyright: ignore[reportCallIssue,reportArgumentType]
    latents = torch.randn(args.frames, 4, size // 8, size // 8, device=device)
    full = timed(lambda z: vae.decode(z.float()).sample, latents, args.repeats, device)  # the VAE runs fp32 (model.py)
    tiny = timed(lambda z: taesd.decode(z.to(dtype)).sample, latents, args.repeats, device)
    tiny_name = "taesdxl" if args.family == "sdxl" else "taesd"
    result = {"device": str(device), "family": args.family, "size": size, "frames": args.frames,
              "full_vae_s_per_frame": round(full, 4), f"{tiny_name}_s_per_frame": round(tiny, 4),
              f"{tiny_name}_over_full": round(tiny / full, 4), "speedup": round(full / tiny, 1)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
