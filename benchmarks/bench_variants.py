"""Several prompts in one pass against one job per prompt, in one run.

N prompts on one clip: (a) N separate edits, each on the cached inversion (what a user
gets today re-editing a clip), against (b) one edit with N-1 `variants` (the source
branch computed once per batch and step, shared). The same engine, model and frames;
the inversion is cached first so neither side pays for it. The ratio b / a is the figure.

    OMP_NUM_THREADS=1 python benchmarks/bench_variants.py [--model DIR] [--size 128] [--frames 8] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPTS = ["a watercolor painting", "a snowy night", "an oil painting"]


def main() -> int:
    from bridge.media import read_frames
    from tests.make_params import make_params
    from tokenflow.engine import Engine
    from tokenflow.tiny import make_tiny_pipeline_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a diffusers folder (default: the tiny random model, built here)")
    parser.add_argument("--clip", default=str(Path(__file__).resolve().parents[1] / "media" / "carphone_pristine.mp4"))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(make_tiny_pipeline_dir(Path(tmp) / "tiny"))
        engine = Engine(model, device=args.device, cache_dir=Path(tmp) / "cache")
        frames = list(read_frames(args.clip, 0, args.frames - 1))
        params = make_params(prompt=PROMPTS[0], steps=args.steps, short_side=args.size)
        engine.edit(frames, len(frames), params)  # caches the inversion for both sides

        def one(prompt: str, variants: list[str]) -> float:
            start = time.perf_counter()
            stats = engine.edit(frames, len(frames), params.__class__(**{**params.to_dict(), "prompt": prompt,
                                                                           "variants": tuple(variants)}))
            assert stats.inversion_cached
            return time.perf_counter() - start

        separate = sum(one(prompt, []) for prompt in PROMPTS)
        together = one(PROMPTS[0], PROMPTS[1:])
    result = {"device": args.device, "model": "tiny random" if not args.model else args.model, "size": args.size,
              "frames": args.frames, "steps": args.steps, "prompts": len(PROMPTS),
              "separate_jobs_s": round(separate, 2), "one_pass_s": round(together, 2),
              "one_pass_over_separate": round(together / separate, 3),
              "unet_evaluations_ratio": round((1 + 2 * len(PROMPTS)) / (3 * len(PROMPTS)), 3)}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
