"""`tokenflow edit`: the whole job in one process, no server needed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bridge.media import MediaError, check_output_writable, open_writer, parse_frame_range, probe, read_frames
from server.user_dirs import default_cache_dir
from bridge.status_line import StatusLine, progress_text

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_CANCELLED = 130


def add_edit_options(parser: argparse.ArgumentParser) -> None:
    """The input, range and output, then the edit parameters from the one table in bridge/edit_options.py
    (shared with `tokenflow submit` and docs/protocol.md)."""
    from bridge.edit_options import add_param_options

    parser.add_argument("input", help="source video file")
    parser.add_argument("--frames", metavar="FIRST:LAST",
                        help="source frames to edit, counted from 0, inclusive at both ends (default: whole clip)")
    parser.add_argument("-o", "--output", help="OUT.mp4 / OUT.mov movie, or an image sequence: a folder, or a "
                        "pattern like frames/%%06d.png numbered with source frame numbers "
                        "(default: INPUT_tokenflow.mp4 beside the input)")
    add_param_options(parser, send_defaults=True)


def default_output(source: Path) -> Path:
    return source.with_name(f"{source.stem}_tokenflow.mp4")


def params_from_args(args: argparse.Namespace):
    from bridge.edit_options import params_from_args as chosen
    from tokenflow.params import EditParams

    params = EditParams(**chosen(args))
    params.validate()
    return params


def register(subparsers) -> None:
    from tokenflow.model import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "edit", help="edit a clip in this process (no server)",
        description="Edit a video clip with a text prompt using TokenFlow, in this process.",
    )
    add_edit_options(parser)
    parser.add_argument("--model", default=os.environ.get("TOKENFLOW_MODEL", DEFAULT_MODEL),
                        help="hub id, local diffusers folder, or .safetensors checkpoint (default: %(default)s)")
    parser.add_argument("--model-config", help="diffusers folder giving the configuration of a single-file checkpoint")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--cache-dir", type=Path, help="inversion cache folder (default: the user cache directory)")
    parser.add_argument("--stats", type=Path, metavar="JSON", help="write figures about the run to this JSON file")
    parser.set_defaults(func=run)


def fail(message: str, code: int) -> int:
    print(f"tokenflow: error: {message}", file=sys.stderr)
    return code


def write_json_atomically(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    from server.quiet import quiet_libraries

    quiet_libraries()
    from tokenflow.engine import Engine
    from tokenflow.errors import EngineError
    from tokenflow.events import Cancelled, FrameReady, Progress

    source = Path(args.input)
    # A string, not a Path: a trailing "/" (image sequence into a folder) must survive.
    output = args.output if args.output else str(default_output(source))
    try:
        params = params_from_args(args)
        info = probe(source)
        first, last = parse_frame_range(args.frames, info.frame_count)
        check_output_writable(output)
    except (MediaError, ValueError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)

    display = StatusLine()
    display.message(f"Loading model {args.model} ...")
    try:
        engine = Engine(args.model, device=args.device, cache_dir=args.cache_dir or default_cache_dir(),
                        model_config=args.model_config)
    except EngineError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)

    n_frames = last - first + 1
    writer = open_writer(output, info, first)

    def on_event(event) -> None:
        if isinstance(event, FrameReady):
            writer.write(event.image)
        elif isinstance(event, Progress):
            display.show(progress_text(event.stage, event.step, event.total, event.frames_done, event.frames_total,
                                       event.eta_s))

    try:
        stats = engine.edit(read_frames(source, first, last), n_frames, params, on_event=on_event)
        writer.close()
    except Cancelled:
        writer.abort()
        return fail("cancelled.", EXIT_CANCELLED)
    except KeyboardInterrupt:
        writer.abort()
        display.end()
        return fail("interrupted; nothing was written.", EXIT_CANCELLED)
    except (EngineError, MediaError) as exc:
        writer.abort()
        display.end()
        return fail(str(exc), EXIT_FAILED)
    except BaseException:
        writer.abort()
        raise
    display.end()
    if args.stats:
        data = stats.to_dict()
        data["seconds"]["load"] = round(engine.load_seconds, 4)
        data["source"] = {"path": str(source), "first": first, "last": last, "frame_rate": str(info.frame_rate),
                          "size": [info.width, info.height]}
        data["output"] = [str(p) for p in writer.outputs]
        write_json_atomically(args.stats, data)
    print(f"Wrote {n_frames} frames ({first}..{last}) to {output}")
    return 0
