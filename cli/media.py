"""`tokenflow formats` (the export presets) and `tokenflow probe INPUT` (what a clip is).

Both run wherever the bridge runs, without torch or a server; `probe --server`
asks a running server about a file on its machine instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from fractions import Fraction
from typing import Any

from bridge.media.presets import PRESETS, ExportPreset, get_preset
from cli.options import connection_options, curve_keys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _start_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: give e.g. 1001.") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative: give 0 or more.")
    return value


def add_format_options(parser: argparse.ArgumentParser) -> None:
    """--format, --start-number and --no-audio, shared by `tokenflow edit`, `submit` and the queue."""
    parser.add_argument("--format", metavar="PRESET", type=_preset_name,
                        help="export preset: " + ", ".join(PRESETS) + " (default: implied by --output; "
                        "`tokenflow formats` describes them)")
    parser.add_argument("--start-number", metavar="N", type=_start_number,
                        help="number the first image of a sequence N, e.g. 1001 (default: the source frame number)")
    parser.add_argument("--no-audio", dest="audio", action="store_false",
                        help="a movie output without the source's audio (default: the audio is carried when it "
                        "can be decoded; when it cannot, the picture is exported alone with a warning)")


def _preset_name(text: str) -> str:
    """The canonical preset name; "ProRes-422-HQ", "prores" and "png" are accepted too."""
    try:
        return get_preset(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def register(subparsers) -> None:
    formats = subparsers.add_parser(
        "formats", help="list the export presets (--format)",
        description="The export presets `--format` accepts, and which editors import each directly.",
    )
    formats.add_argument("--json", action="store_true", help="print them as JSON")
    formats.set_defaults(func=run_formats)

    connection = connection_options(
        server_help="ask a running server about a file on its machine (default endpoint when no value)",
        server_optional=True, timeout=60.0, timeout_help="seconds to wait for the server (default: %(default)s)")
    probe = subparsers.add_parser(
        "probe", parents=[connection], help="describe a clip: frames, rate, timecode, size, audio, variable rate",
        description="Describe a clip as editors count it: frame count at its exact rate, start timecode, size, "
        "colour tags, audio, and whether its timestamps are irregular (variable rate or gaps; such frames hold "
        "the previous picture). Reads every timestamp, decodes nothing.",
    )
    probe.add_argument("input", help="video file (on the server's machine with --server)")
    probe.add_argument("--json", action="store_true", help="print the facts as JSON")
    probe.set_defaults(func=run_probe)


# --- formats ---


def preset_table(presets: list[ExportPreset]) -> str:
    rows = [("NAME", "FORMAT", "FILES", "BITS", "AUDIO")]
    for p in presets:
        files = p.extension if p.is_movie else f"NAME_%06d{p.extension}"
        audio = {"pcm": "PCM 24-bit", "aac": "AAC"}.get(p.audio_codec, "-")
        rows.append((p.name, p.label, files, f"{p.bit_depth}{' float' if p.float_samples else ''}", audio))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    for p in presets:
        lines.append("")
        lines.append(f"{p.name}: {p.description}")
        lines.append(f"  imports directly into: {', '.join(p.editors)}")
        if p.min_size != (1, 1):
            lines.append(f"  needs pictures of at least {p.min_size[0]}x{p.min_size[1]}")
    return "\n".join(lines)


def run_formats(args: argparse.Namespace) -> int:
    presets = list(PRESETS.values())
    if args.json:
        print(json.dumps([asdict(p) for p in presets], indent=2))
    else:
        print(preset_table(presets))
    return EXIT_OK


# --- probe ---


def facts_text(facts: dict[str, Any]) -> str:
    rate = Fraction(facts["frame_rate"])
    lines = [facts["path"]]

    def row(name: str, value: str) -> None:
        lines.append(f"  {name:<11} {value}")

    row("picture", f"{facts['width']}x{facts['height']}, {facts['codec']} {facts['pix_fmt'] or ''}".rstrip())
    steady = "variable (timestamps are irregular)" if facts["variable_rate"] else "constant"
    row("frame rate", f"{facts['frame_rate']} ({float(rate):.3f} fps), {steady}")
    row("frames", f"{facts['frame_count']} (0..{facts['frame_count'] - 1}), {facts['duration_s']:.3f} s")
    if facts["start_timecode"]:
        row("timecode", f"{facts['start_timecode']} .. {facts['end_timecode'] or '?'}")
    else:
        row("timecode", "none (editors show it from 00:00:00:00; exports carry none either)")
    if facts["pictures"] is not None:
        held = facts["held_frames"]
        text = f"{facts['pictures']} stored"
        if held or facts["dropped_pictures"]:
            text += (f"; {held} frame(s) hold the previous picture across timestamp gaps"
                     + (f", {facts['dropped_pictures']} picture(s) share a frame and are not shown"
                        if facts["dropped_pictures"] else ""))
        row("pictures", text)
    if facts["colour"]:
        row("colour", facts["colour"]["text"])
    audio = facts["audio"]
    if audio:
        length = f", {audio['duration_s']:.3f} s" if audio["duration_s"] is not None else ""
        row("audio", f"{audio['codec']} {audio['sample_rate']} Hz {audio['layout'] or str(audio['channels']) + ' ch'}"
                     f"{length}")
        if audio.get("problem"):
            row("", f"cannot be decoded: {audio['problem']}; exports carry the picture only")
    else:
        row("audio", "none")
    return "\n".join(lines)


def run_probe(args: argparse.Namespace) -> int:
    if args.server is not None:
        return _probe_on_server(args)
    from bridge.media import MediaError, clip_facts, probe

    try:
        facts = clip_facts(probe(args.input, scan=True))
    except MediaError as exc:
        print(f"tokenflow: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(facts, indent=2) if args.json else facts_text(facts))
    return EXIT_OK


def _probe_on_server(args: argparse.Namespace) -> int:
    from bridge.wire.client import Client, ClientError, ServerError, absolute

    try:
        with Client(args.server or None, timeout=args.timeout, keys=curve_keys(args), name="tokenflow-probe") as client:
            facts = client.probe(absolute(args.input))
    except ServerError as exc:
        print(f"tokenflow: error: {exc.message}" + (f"\n  {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return EXIT_BAD_INPUT
    except ClientError as exc:
        print(f"tokenflow: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(facts, indent=2) if args.json else facts_text(facts))
    return EXIT_OK
