"""`tokenflow models`: build local test models (random weights, Stable Diffusion layout)."""

from __future__ import annotations

import argparse
from pathlib import Path

NOISE_WARNING = (
    "WARNING: random weights. Its output is NOISE, not art: it exists to test the machinery "
    "(every code path, real cost) without downloading a real model."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="build local test models", description=NOISE_WARNING)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    tiny = sub.add_parser(
        "make-tiny",
        help="a ~2.5M-parameter random model with SD's layout (output is noise)",
        description="Build, offline, a tiny randomly initialised Stable Diffusion-layout pipeline as a "
        "diffusers folder (loads with from_pretrained). " + NOISE_WARNING,
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_make_tiny)
    sd21 = sub.add_parser(
        "make-sd21-random",
        help="SD 2.1-base's real configuration with random weights, for GPU timing (output is noise)",
        description="Build SD 2.1-base's configuration with random weights (~1.3B parameters, ~5 GB on disk): "
        "the real compute cost, for timing. " + NOISE_WARNING,
    )
    sd21.add_argument("directory", type=Path)
    sd21.add_argument("--seed", type=int, default=0)
    sd21.set_defaults(func=_make_sd21)


def _build(builder_name: str, what: str, args: argparse.Namespace) -> int:
    from server.quiet import quiet_libraries
    from tokenflow import tiny

    quiet_libraries()
    path = getattr(tiny, builder_name)(args.directory, seed=args.seed)
    print(f"Built {what} in {path}")
    print(NOISE_WARNING)
    return 0


def _make_tiny(args: argparse.Namespace) -> int:
    return _build("make_tiny_pipeline_dir", "a tiny random test model", args)


def _make_sd21(args: argparse.Namespace) -> int:
    return _build("make_sd21_base_random_dir", "an SD 2.1-base-shaped random model", args)
