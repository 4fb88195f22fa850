"""`tokenflow submit` and `tokenflow jobs`: the server's command-line client.

Imports neither torch nor the server: it runs wherever the bridge runs. Edit options
left unset are not sent, so the defaults of bridge/wire/edit_params.py apply, as in `tokenflow edit`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bridge.display import StatusLine, format_duration, progress_text
from bridge.wire import protocol as p
from bridge.wire.client import Client, ClientError, EventKind, JobEvent, ServerError, absolute
from bridge.wire.edit_params import (
    add_param_options,
    flag_name,
    matte_options_problem,
    params_from_args,
    problems,
    prompts_problem,
)
from bridge.wire.matte_ref import matte_upload
from bridge.wire.naming import prompt_outputs
from cli.media import add_format_options
from cli.options import connection_defaults, connection_options, curve_keys

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130


def register(subparsers) -> None:
    connection = connection_options()
    submit = subparsers.add_parser(
        "submit", help="send an edit to the server and wait for it", parents=[connection],
        description="Queue an edit on a running `tokenflow serve`, show its progress, and exit with its outcome. "
        "Paths are read and written by the server, on its machine. Ctrl-C asks whether to cancel the job "
        "or leave it running.",
    )
    submit.add_argument("input", help="source video file (on the server's machine)")
    submit.add_argument("--frames", metavar="FIRST:LAST",
                        help="source frames to edit, counted from 0, inclusive at both ends (default: whole clip)")
    submit.add_argument("-o", "--output", help="OUT.mp4 / OUT.mov movie, or an image sequence (a folder, or a "
                        "pattern like frames/%%06d.png) (default: "
                        f"{default_output_name('INPUT')} beside the input, JOBID being the job's id)")
    add_param_options(submit, send_defaults=False)  # the same table as `tokenflow edit` and the protocol
    add_format_options(submit)
    submit.add_argument("--model", help="one of the server's models (default: the server's default)")
    submit.add_argument("--priority", type=int, default=0, help="higher runs first (default: %(default)s)")
    submit.add_argument("--detach", action="store_true", help="print the job id and exit once it is queued")
    submit.add_argument("--overwrite", action="store_true",
                        help="replace an existing output (never the input); without it an existing output is refused")
    submit.add_argument("--download", type=Path, metavar="DIR",
                        help="when the job is done, save its outputs into DIR on this machine (checksums verified; "
                        "an existing file is never replaced)")
    submit.set_defaults(func=run_submit)

    jobs = subparsers.add_parser("jobs", help="list, show, cancel, watch or reorder the server's jobs",
                                 description="Look at and manage the jobs of a running `tokenflow serve`.")
    actions = jobs.add_subparsers(dest="jobs_action", metavar="ACTION")
    ls = actions.add_parser("list", parents=[connection], help="jobs, newest first (the default action)")
    ls.add_argument("--state", action="append", choices=p.JOB_STATES, help="only jobs in this state (repeatable)")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    show = actions.add_parser("show", parents=[connection], help="one job in detail")
    show.add_argument("job")
    show.add_argument("--json", action="store_true")
    cancel = actions.add_parser("cancel", parents=[connection], help="cancel a queued or running job")
    cancel.add_argument("job")
    watch = actions.add_parser("watch", parents=[connection],
                               help="follow a job's progress until it ends; exits with its outcome")
    watch.add_argument("job")
    move = actions.add_parser("reorder", parents=[connection],
                              help="change a queued job's priority or place in the queue")
    move.add_argument("job")
    move.add_argument("--priority", type=int)
    move.add_argument("--position", type=int, help="0 = next to run")
    delete = actions.add_parser("delete", parents=[connection], help="forget a job that is not running and free "
                                "what the server stored for it (its outputs are kept)")
    delete.add_argument("job")
    # Bare `tokenflow jobs` lists with the default connection (options live on each action).
    jobs.set_defaults(func=run_jobs, jobs_action=None, **connection_defaults(connection))


# --- helpers ---


def error_exit(message: str, code: int) -> int:
    """Print one `tokenflow: error:` line and return the exit code (shared by the client commands)."""
    print(f"tokenflow: error: {message}", file=sys.stderr)
    return code


def client_from_args(args: argparse.Namespace, name: str = "tokenflow-cli", **options) -> Client:
    """A client for the connection options every client command takes (--server, keys, --timeout)."""
    return Client(args.server, timeout=args.timeout, keys=curve_keys(args), name=name, **options)


def _describe(event: JobEvent) -> str | None:
    # An event's body is the protocol dataclass of its kind, so the body's type says the kind.
    b = event.body
    if isinstance(b, p.Progress):
        return progress_text(b.stage, b.step, b.total, b.frames_done, b.frames_total, b.eta_s)
    if isinstance(b, p.Proxy) and b.kind == "preview":
        return f"preview   step {b.step}"
    if isinstance(b, p.Requeued):
        return f"requeued  ({b.reason})"
    return None


def _follow(client: Client, job: str, from_seq: int) -> int:
    """Show a job's progress until it ends; exit code from its outcome."""
    status = StatusLine()
    for event in client.events(job, from_seq, frames=False, proxies=False):
        text = _describe(event)
        if text:
            status.show(f"{job}  {text}", force=event.kind is EventKind.REQUEUED)
        if event.terminal:
            status.end()
            return _outcome(event)
    return EXIT_FAILED


def _outcome(event: JobEvent) -> int:
    """The exit code of a terminal event (done, failed or cancelled), after saying how the job ended."""
    b = event.body
    if isinstance(b, p.Done):
        print(f"Job {event.job} done: {b.frames} frames from frame {b.first_frame} in {b.elapsed_s:.1f} s; "
              + (f"wrote {', '.join(b.outputs)}" if len(b.variants) <= 1 else f"{len(b.variants)} prompts:"))
        if len(b.variants) > 1:  # several prompts: which output is which prompt's
            for each in b.variants:
                print(f"  {each.prompt!r}: {_where(each.outputs)}")
        for warning in b.warnings:
            print(f"tokenflow: warning: {warning}", file=sys.stderr)
        return EXIT_OK
    if isinstance(b, p.Failed):
        print(f"tokenflow: job {event.job} failed ({b.code}): {b.message}" + (f"\n  {b.hint}" if b.hint else ""),
              file=sys.stderr)
        return EXIT_FAILED
    if isinstance(b, p.Cancelled):
        print(f"Job {event.job} was cancelled ({b.reason}).", file=sys.stderr)
        return EXIT_CANCELLED
    # Callers pass only terminal events (`event.terminal`, `client.wait`): another kind is a bug here.
    raise ValueError(f"{event.kind.value} is not a terminal event")


def _where(paths: list[str]) -> str:
    """One output as a person reads it: the movie, or an image sequence's folder and its count."""
    if len(paths) == 1:
        return paths[0]
    return f"{Path(paths[0]).parent}/ ({len(paths)} files)" if paths else "(nothing written)"


def _ask_cancel(job: str) -> bool:
    """Ctrl-C while following a job: cancel it, or leave it running? Non-interactive: cancel."""
    if not sys.stdin.isatty():
        return True
    try:
        answer = input(f"\nCancel job {job}? [y] cancel it / [N] leave it running: ")
    except (EOFError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")


def _follow_interactively(client: Client, job: str, from_seq: int) -> int:
    try:
        return _follow(client, job, from_seq)
    except KeyboardInterrupt:
        if _ask_cancel(job):
            client.cancel(job)
            print(f"Cancelling job {job} ...", file=sys.stderr)
            return _outcome(client.wait(job))
        print(f"Job {job} keeps running on the server. Watch it with `tokenflow jobs watch {job}`; "
              f"cancel it with `tokenflow jobs cancel {job}`.", file=sys.stderr)
        return EXIT_OK


# --- submit ---


def job_spec_from_args(args: argparse.Namespace) -> p.JobSpec:
    params = params_from_args(args)
    source = absolute(args.input)
    matte = params.get("matte")
    if matte and matte != "alpha" and matte_upload(matte) is None:
        params["matte"] = absolute(matte)  # as the input: the server has no idea of this shell's folder
    preset = getattr(args, "format", None)
    if args.output:
        output = absolute(args.output)
    else:
        output = _default_output(source, preset)
    return p.JobSpec(input=source, params=params, frames=args.frames, output=output, model=args.model,
                     priority=args.priority, client_token=uuid.uuid4().hex, preset=preset,
                     start_number=getattr(args, "start_number", None), overwrite=bool(getattr(args, "overwrite", False)),
                     audio=getattr(args, "audio", True))


def _default_output(source: str, preset: str | None) -> str:
    """INPUT_tokenflow_JOB.mp4 beside the input (the server puts the job id for `{job}`), or the
    preset's extension (a folder for a sequence): unique per job, so two prompts keep both."""
    from bridge.media.presets import PRESETS

    chosen = PRESETS[preset] if preset else PRESETS["h264"]
    stem = Path(source).with_name(f"{Path(source).stem}_tokenflow_{{job}}")
    return f"{stem}{chosen.extension}" if chosen.is_movie else f"{stem}/"


def default_output_name(stem: str, preset: str | None = None) -> str:
    """The default output's name as help and messages show it (JOBID for the id the server fills in)."""
    return Path(_default_output(f"{stem}.mov", preset)).name.replace("{job}", "JOBID")


def run_submit(args: argparse.Namespace) -> int:
    wrong = prompts_problem(args) or matte_options_problem(params_from_args(args), flag_name)
    if wrong:
        return error_exit(wrong, EXIT_BAD_INPUT)
    for message in problems(params_from_args(args), flag_name).values():  # the server's checks, said first here
        return error_exit(message, EXIT_BAD_INPUT)
    spec = job_spec_from_args(args)
    try:
        with client_from_args(args) as client:
            try:
                accepted = client.submit(spec)
            except ServerError as exc:
                where = f" ({exc.field})" if exc.field else ""
                if exc.code == "output_not_allowed" and not args.output:
                    return error_exit(f"no -o was given, so the output would go beside the input, but {exc.message[0].lower()}"
                                f"{exc.message[1:]}\n  Pass -o with a path in an allowed folder, or start the server "
                                "with --allow-output FOLDER_OF_THE_INPUT.", EXIT_BAD_INPUT)
                return error_exit(f"{exc.message}{where}" + (f"\n  {exc.hint}" if exc.hint else ""), EXIT_BAD_INPUT)
            assert isinstance(accepted.body, p.Accepted), "Client.submit checks the reply's type"
            job = accepted.job
            if args.detach:
                print(job)
                return EXIT_OK
            print(f"Job {job} queued (position {accepted.body.position}).", file=sys.stderr)
            code = _follow_interactively(client, job, accepted.seq + 1)
            if code == EXIT_OK and args.download is not None and client.status(job).state == p.JobState.DONE:
                from bridge.wire.download import download_job

                for saved in download_job(client, job, args.download):
                    print(f"Saved {saved.path}" + (" (already there)" if saved.already_there else ""))
            return code
    except ClientError as exc:  # ConnectionLost included
        return error_exit(str(exc), EXIT_FAILED)


# --- jobs ---


def _line(info: p.JobInfo) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.created))
    state = info.state + (f" #{info.position}" if info.position is not None else "")
    if info.state == p.JobState.RUNNING and info.progress:
        pr = info.progress
        state += f" {pr.get('stage')} {pr.get('step')}/{pr.get('total')}"
    prompt = info.prompt if len(info.prompt) <= 40 else info.prompt[:37] + "..."
    more = f" +{len(info.variants)} prompt{'s' if len(info.variants) > 1 else ''}" if info.variants else ""
    return f"{info.id}  {when}  {state:<24} {Path(info.input).name} [{info.frames or 'all'}]  {prompt!r}{more}"


def _clock_time(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))


def _show(info: p.JobInfo) -> str:
    """One job for people: local times, no empty fields, one output a line (`--json` has the raw record)."""
    rows: list[tuple[str, Any]] = [
        ("job", info.id), ("state", info.state),
        ("queue position", None if info.position is None else info.position + 1),
        ("created", _clock_time(info.created)), ("updated", _clock_time(info.updated)),
        ("input", info.input), ("frames", info.frames or "the whole clip"),
        ("frame count", info.n_frames), ("prompt", repr(info.prompt)),
        # several prompts: no file has the base name; each prompt's output is listed below
        ("outputs named after" if info.variants else "output", info.output),
        ("priority", info.priority), ("attempts", info.attempts), ("batch", info.batch),
        ("row", info.row), ("clip name", info.name),
    ]
    lines = [f"{label}: {value}" for label, value in rows if value is not None]
    if info.variants and info.output:  # several prompts: each one's output (named as the server names them)
        prompts = [info.prompt, *info.variants]
        lines += [f"prompt {n} of {len(prompts)}: {prompt!r} -> {out}"
                  for n, (prompt, out) in enumerate(zip(prompts, prompt_outputs(info.output, prompts)), start=1)]
    lines += [f"output file: {path}" for path in info.outputs]
    if info.progress and info.state == p.JobState.RUNNING:
        pr = info.progress
        lines.append(f"progress: {pr.get('stage')} {pr.get('step')}/{pr.get('total')}"
                     + (f", about {format_duration(pr['eta_s'])} left" if pr.get("eta_s") is not None else ""))
    if info.error:
        lines.append(f"error: {info.error.get('code')}: {info.error.get('message')}")
        if info.error.get("hint"):
            lines.append(f"  {info.error['hint']}")
    return "\n".join(lines)


def run_jobs(args: argparse.Namespace) -> int:
    action = args.jobs_action or "list"
    try:
        with client_from_args(args) as client:
            if action == "list":
                jobs = client.list_jobs(getattr(args, "state", None), getattr(args, "limit", 50))
                if getattr(args, "json", False):
                    print(json.dumps([asdict(j) for j in jobs], indent=2))
                else:
                    print("\n".join(_line(info) for info in jobs) if jobs else "No jobs.")
                return EXIT_OK
            if action == "show":
                info = client.status(args.job)
                print(json.dumps(asdict(info), indent=2) if args.json else _show(info))
                return EXIT_OK
            if action == "cancel":
                info = client.cancel(args.job)
                print(f"Job {info.id}: {info.state}" + (" (cancel requested)" if info.state == p.JobState.RUNNING else ""))
                return EXIT_OK
            if action == "reorder":
                if args.priority is None and args.position is None:
                    return error_exit("give --priority or --position.", EXIT_BAD_INPUT)
                info = client.reorder(args.job, priority=args.priority, position=args.position)
                print(f"Job {info.id}: priority {info.priority}, position {info.position}")
                return EXIT_OK
            if action == "watch":
                return _follow_interactively(client, args.job, 1)
            if action == "delete":
                print(client.ask(p.Delete(), p.Ok, job=args.job).detail)
                return EXIT_OK
    except ServerError as exc:
        return error_exit(str(exc), EXIT_BAD_INPUT)
    except ClientError as exc:
        return error_exit(str(exc), EXIT_FAILED)
    return error_exit(f"unknown action {action!r}", EXIT_BAD_INPUT)

