"""`tokenflow edit`: the whole job in one process, no server needed."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.display import StatusLine, progress_text
from bridge.folders import inversion_cache_dir
from bridge.media import MediaError, check_output_writable, open_writer, parse_frame_range, probe, read_frames
from bridge.media import default_output as default_media_output
from bridge.media.matte import check_matte, read_matte
from bridge.media.output_safety import check_output, next_free_output
from bridge.media.pipeline import FrameSinks
from bridge.wire.naming import prompt_outputs
from cli.media import add_format_options

if TYPE_CHECKING:
    from tokenflow.params import EditParams

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_CANCELLED = 130


def add_edit_options(parser: argparse.ArgumentParser) -> None:
    """The input, range and output, then the edit parameters from the one table in bridge/wire/edit_params.py
    (shared with `tokenflow submit`, the protocol, the panel and docs/protocol.md)."""
    from bridge.wire.edit_params import add_param_options

    parser.add_argument("input", nargs="?", help="source video file (or take it from a timeline with --otio)")
    parser.add_argument("--frames", metavar="FIRST:LAST",
                        help="source frames to edit, counted from 0, inclusive at both ends (default: whole clip)")
    parser.add_argument("-o", "--output", help="OUT.mp4 / OUT.mov movie, or an image sequence: a folder, or a "
                        "pattern like frames/%%06d.png numbered with source frame numbers "
                        "(default: INPUT_tokenflow.mp4 beside the input)")
    add_param_options(parser, send_defaults=True)
    add_format_options(parser)


def default_output(source: Path, preset: str | None = None) -> str:
    """INPUT_tokenflow.mp4 beside the input; with a preset, its extension (or a folder for sequences)."""
    return default_media_output(source, preset)


def params_from_args(args: argparse.Namespace) -> EditParams:
    """The EditParams the options ask for; a ValueError naming the option when one is out of range."""
    from bridge.wire.edit_params import complete, flag_name, matte_options_problem, prompts_problem
    from bridge.wire.edit_params import params_from_args as chosen
    from tokenflow.params import EditParams

    wrong = prompts_problem(args) or matte_options_problem(chosen(args), flag_name)
    if wrong:
        raise ValueError(wrong)
    return EditParams(**complete(chosen(args), flag_name))


def register(subparsers) -> None:
    from tokenflow.model import DEFAULT_MODEL

    parser = subparsers.add_parser(
        "edit", help="edit a clip in this process (no server)",
        description="Edit a video clip with a text prompt using TokenFlow, in this process.",
    )
    add_edit_options(parser)
    parser.add_argument("--model", default=os.environ.get("TOKENFLOW_MODEL", DEFAULT_MODEL),
                        help="hub id, local diffusers folder, .safetensors checkpoint, or a name from `tokenflow models list` "
                        "(default: %(default)s)")
    parser.add_argument("--model-config", help="diffusers folder giving the configuration of a single-file checkpoint")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default="auto")
    parser.add_argument("--cache-dir", type=Path, help="inversion cache folder (default: the user cache directory)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output (never the input); without it an existing output is refused")
    parser.add_argument("--stats", type=Path, metavar="JSON", help="write figures about the run to this JSON file")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the UNet's ResNet and feed-forward blocks (slow first run; for long jobs on a GPU)")
    otio_group = parser.add_argument_group("OpenTimelineIO", "take the clip and its range from a timeline file "
                                           "(docs/editors.md)")
    otio_group.add_argument("--otio", type=Path, metavar="TIMELINE", help="an .otio (or other OTIO-readable) timeline")
    otio_group.add_argument("--clip", metavar="NAME", help="the clip's name in the timeline")
    otio_group.add_argument("--track", type=int, metavar="N", help="video track, from 1 at the bottom (with --index)")
    otio_group.add_argument("--index", type=int, metavar="I", help="clip in that track, from 1, gaps not counted")
    otio_group.add_argument("--otio-out", type=Path, metavar="FILE",
                            help="write a new timeline with the edit on a track above the source clip")
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

    try:
        otio_pick = _otio_source(args)
    except ValueError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    source = Path(args.input)
    # A string, not a Path: a trailing "/" (image sequence into a folder) must survive.
    preset = getattr(args, "format", None)
    start_number = getattr(args, "start_number", None)
    overwrite = bool(getattr(args, "overwrite", False))
    audio = bool(getattr(args, "audio", True))
    try:
        # Without -o: the first free INPUT_tokenflow[_N].mp4, so a second prompt keeps the first result.
        output = args.output if args.output else next_free_output(default_output(source, preset))
        params = params_from_args(args)
        prompts = list(params.prompts)  # every -p, checked with the other parameters (`variants`)
        # Several prompts: one output each, named after its prompt (bridge/wire/naming.py).
        outputs = prompt_outputs(output, prompts)
        info = probe(source)
        first, last = parse_frame_range(args.frames, info.frame_count)
        if params.matte:
            check_matte(params.matte, source, first, last, info.pix_fmt)
        for each in outputs:
            check_output(each, source=source, overwrite=overwrite, preset=preset)
            check_output_writable(each, preset)
            # Opened (and closed again) now so a clash with existing files or a format the
            # clip cannot take is reported before any GPU work, not after it.
            open_writer(each, info, first, preset=preset, start_number=start_number,
                        frame_count=last - first + 1, overwrite=overwrite, audio=audio).abort()
    except (MediaError, ValueError) as exc:
        return fail(str(exc), EXIT_BAD_INPUT)

    display = StatusLine()
    display.message(f"Loading model {args.model} ...")
    try:
        from server.model_registry import find_preview_decoders, resolve_model

        engine = Engine(resolve_model(args.model), device=args.device, cache_dir=args.cache_dir or inversion_cache_dir(),
                        model_config=args.model_config, compile=args.compile, preview_decoders=find_preview_decoders())
    except EngineError as exc:
        return fail(str(exc), EXIT_BAD_INPUT)
    if engine.preview_decoder_problem:
        print(f"tokenflow: note: previews use the full VAE: {engine.preview_decoder_problem}", file=sys.stderr)

    n_frames = last - first + 1
    writers = [open_writer(each, info, first, preset=preset, start_number=start_number, frame_count=n_frames,
                           overwrite=overwrite, audio=audio) for each in outputs]
    writer = writers[0]

    # Each writer encodes on a thread of its own while the engine decodes the next frames.
    sinks = FrameSinks({f"output{variant}": each.write for variant, each in enumerate(writers)})

    def on_event(event) -> None:
        if isinstance(event, FrameReady):
            sinks.put(f"output{event.variant}", event.best_image, event.best_image.nbytes)
        elif isinstance(event, Progress):
            display.show(progress_text(event.stage, event.step, event.total, event.frames_done, event.frames_total,
                                       event.eta_s))

    try:
        matte = read_matte(params.matte, source, first, last) if params.matte else None
        with sinks:
            stats = engine.edit(read_frames(source, first, last), n_frames, params, on_event=on_event, matte=matte)
        for each_writer in writers:
            each_writer.close()
    except Cancelled:
        _abort(writers)
        return fail("cancelled.", EXIT_CANCELLED)
    except KeyboardInterrupt:
        _abort(writers)
        display.end()
        return fail("interrupted; nothing was written.", EXIT_CANCELLED)
    except (EngineError, MediaError) as exc:
        _abort(writers)
        display.end()
        return fail(str(exc), EXIT_FAILED)
    except BaseException:
        _abort(writers)
        raise
    display.end()
    for warning in {w for each_writer in writers for w in each_writer.warnings}:
        print(f"tokenflow: warning: {warning}", file=sys.stderr)
    if args.stats:
        data = stats.to_dict()
        data["seconds"]["load"] = round(engine.load_seconds, 4)
        data["source"] = {"path": str(source), "first": first, "last": last, "frame_rate": str(info.frame_rate),
                          "size": [info.width, info.height]}
        data["output"] = [str(p) for each_writer in writers for p in each_writer.outputs]
        write_json_atomically(args.stats, data)
    for prompt, each in zip(prompts, outputs):
        print(f"Wrote {n_frames} frames ({first}..{last}) to {each}" + (f"  ({prompt})" if len(outputs) > 1 else ""))
    if otio_pick is not None and args.otio_out:
        return _write_otio(otio_pick, args, writer)
    return 0


def _abort(writers: list) -> None:
    """Every output this run opened goes (the writers remove only what they wrote)."""
    for each in writers:
        each.abort()


def _otio_source(args: argparse.Namespace):
    """With --otio: the picked clip; sets args.input and args.frames from it. Without: checks INPUT is there."""
    if args.otio is None:
        if args.input is None:
            raise ValueError("name the video to edit (INPUT), or a timeline with --otio TIMELINE --clip NAME.")
        if args.otio_out or args.clip or args.track is not None or args.index is not None:
            raise ValueError("--clip, --track, --index and --otio-out need --otio TIMELINE.")
        return None
    from bridge.editors import otio as bridge_otio

    if args.input is not None or args.frames is not None:
        raise ValueError("--otio takes the video and its frames from the timeline: leave out INPUT and --frames.")
    if args.otio_out is not None and args.otio_out.exists():
        raise ValueError(f"{args.otio_out} exists; name a new file for --otio-out.")
    timeline = bridge_otio.read_timeline(args.otio)
    chosen = bridge_otio.pick(timeline, args.clip, args.track, args.index, base=args.otio.parent.absolute())
    args.input, args.frames = str(chosen.media), f"{chosen.first}:{chosen.last}"
    print(f"{chosen.clip.name}: {chosen.media} frames {chosen.first}..{chosen.last}", file=sys.stderr)
    return chosen


def _write_otio(chosen, args: argparse.Namespace, writer) -> int:
    from bridge.editors import otio as bridge_otio
    from bridge.wire.edit_params import prompts_from_args  # -p is repeatable: a list; the timeline gets the first

    pattern = getattr(writer, "pattern", None)  # image sequences know their pattern; movies are one file
    output = pattern if pattern is not None else writer.outputs[0]
    timeline = bridge_otio.with_edit(chosen, output, sequence=pattern is not None,
                                     metadata={"prompt": prompts_from_args(args)[0], "seed": args.seed})
    try:
        bridge_otio.write_new(timeline, args.otio_out)
    except ValueError as exc:
        return fail(str(exc), EXIT_FAILED)
    print(f"Wrote {args.otio_out}: the edit is on a new track above {chosen.clip.name!r}.")
    return 0
