"""`tokenflow queue`: the render queue from the command line (docs/queue.md).

    tokenflow queue                      the queue as a table (state, progress, ETA)
    tokenflow queue add JOBS [--wait]    a batch from JSON, CSV or an OpenTimelineIO file
    tokenflow queue wait [BATCH]         follow a batch to its end, then print its summary
    tokenflow queue pause | resume       the whole queue (the running job finishes first)
    tokenflow queue retry | remove JOB   one or more jobs
    tokenflow queue move JOB POSITION    1 = next to run
    --download DIR                       save finished outputs here (checksums verified)

Imports neither torch nor the server; runs wherever the bridge runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bridge.display import StatusLine
from bridge.wire import protocol as p
from bridge.wire import summary
from bridge.wire.client import Client, ClientError, ConnectionLost, ServerError, absolute
from bridge.wire.download import DownloadError, Saved, download_job
from bridge.wire.naming import prompt_outputs
from cli import batch as batch_file
from cli.jobs import client_from_args
from cli.jobs import error_exit as _err
from cli.options import connection_options

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
POLL_S = 1.0  # how often `wait` looks at the queue; a listing is one small request
_FINISHED_SHOWN = 10  # finished jobs the bare table shows below the active ones


def _connection(keep_earlier: bool) -> argparse.ArgumentParser:
    # Options on both `queue` and each action; an action's copy keeps a value given before it
    # (`tokenflow queue --server X add ...`).
    return connection_options(keep_earlier=keep_earlier)


def register(subparsers) -> None:
    q = subparsers.add_parser(
        "queue", parents=[_connection(keep_earlier=False)],
        help="the render queue: add a batch of jobs, watch it, pause, resume, retry, remove, move",
        description="The server's render queue. Bare `tokenflow queue` shows it as a table; `queue add` queues a "
        "batch from a JSON, CSV or OpenTimelineIO file (docs/queue.md). Paths are on the server's machine.",
    )
    q.add_argument("--batch", help="only this batch's jobs")
    q.add_argument("--all", action="store_true", help="every job, not only the active ones and the last few")
    q.add_argument("--json", action="store_true", help="the listing as JSON")
    q.add_argument("--download", type=Path, metavar="DIR",
                   help="save the outputs of the listed done jobs into DIR (skips files already there)")
    actions = q.add_subparsers(dest="queue_action", metavar="ACTION")
    connection = _connection(keep_earlier=True)

    add = actions.add_parser("add", parents=[connection], help="queue a batch of jobs from a JSON, CSV or OpenTimelineIO file",
                             description="Queue one job per row (JSON, CSV) or per clip on a track (OTIO). The "
                             "whole batch is checked first, on the server too; if any job is wrong, nothing is "
                             "queued and every problem is listed.")
    add.add_argument("jobs", type=Path, help="JOBS.json, JOBS.csv or a timeline OpenTimelineIO reads (.otio, ...)")
    # Appended so a repeated -p (several prompts, as `edit` and `submit` take them) is refused
    # by run_add instead of the last one silently winning.
    add.add_argument("-p", "--prompt", action="append", help="prompt for jobs that do not give one (one -p; "
                     "several prompts per job: the `variants` key)")
    add.add_argument("--negative", help="negative prompt for jobs that do not give one")
    add.add_argument("--seed", type=int, help="seed for jobs that do not give one")
    add.add_argument("--steps", type=int, help="denoising steps for jobs that do not give them")
    add.add_argument("--size", type=int, help="working short side for jobs that do not give one")
    add.add_argument("--preset", "--format", dest="preset", help="export preset for jobs that do not give one "
                     "(`tokenflow formats`; default: h264)")
    add.add_argument("-d", "--destination", help="folder for the outputs of jobs that do not give one "
                     "(on the server's machine)")
    # argparse %-formats help texts: a literal % in the default template must be doubled.
    default_template = "{clip}_{first}-{last}_{prompt}_{seed}_{job}".replace("%", "%%")
    placeholders = ", ".join("{" + f + "}" for f in p.NAME_FIELDS)
    add.add_argument("--template", help=f"output name template (default: {default_template}); placeholders: {placeholders}")
    add.add_argument("--track", help="OTIO: the video track, by name or number from 1 (default: the first with clips)")
    add.add_argument("--model", help="one of the server's models (default: the server's default)")
    add.add_argument("--priority", type=int, help="higher runs first (default: 0)")
    add.add_argument("--dry-run", action="store_true", help="check the batch and show the output names; queue nothing")
    add.add_argument("--wait", action="store_true", help="follow the batch to its end and print its summary")
    add.add_argument("--download", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                     help="with --wait: save the outputs into DIR as each job finishes, and the summary beside them")
    wait = actions.add_parser("wait", parents=[connection], help="follow a batch to its end, then print its summary",
                              description="Follow a batch (default: the latest) until every job in it has ended; "
                              "print which succeeded (with outputs) and which failed and why. Exit status 0 when "
                              "all succeeded, 1 otherwise.")
    wait.add_argument("batch_id", nargs="?", metavar="BATCH", help="batch id (default: the latest batch)")
    wait.add_argument("--download", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                      help="save the outputs into DIR as each job finishes, and the summary beside them")
    ls = actions.add_parser("list", parents=[connection], help="the queue as a table (the default action)")
    ls.add_argument("--batch", default=argparse.SUPPRESS, help="only this batch's jobs")
    ls.add_argument("--all", action="store_true", default=argparse.SUPPRESS, help="every job")
    ls.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="the listing as JSON")
    ls.add_argument("--download", type=Path, metavar="DIR", default=argparse.SUPPRESS,
                    help="save the outputs of the listed done jobs into DIR")
    actions.add_parser("pause", parents=[connection],
                       help="pause the whole queue: the running job finishes, nothing new starts")
    actions.add_parser("resume", parents=[connection], help="resume the queue")
    retry = actions.add_parser("retry", parents=[connection],
                               help="queue failed or cancelled jobs again (same output names)")
    retry.add_argument("job", nargs="+")
    remove = actions.add_parser("remove", parents=[connection], help="take jobs out of the queue (a running job is "
                                "cancelled first); outputs already written are kept")
    remove.add_argument("job", nargs="+")
    move = actions.add_parser("move", parents=[connection], help="move a queued job to a place in the queue")
    move.add_argument("job")
    move.add_argument("position", type=int, help="1 = next to run")
    q.set_defaults(func=run, queue_action=None)


# --- helpers ---


def _client(args: argparse.Namespace) -> Client:
    # A queue outlives server restarts: keep trying to reconnect for a while.
    return client_from_args(args, "tokenflow-queue", reconnect_timeout=120.0)


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _percent(info: p.JobInfo) -> float | None:
    if info.state == p.JobState.DONE:
        return 100.0
    pr = info.progress or {}
    if info.state != p.JobState.RUNNING or not pr:
        return None
    if pr.get("eta_s") is not None and pr.get("elapsed_s"):
        # The engine prices every stage in UNet passes, so elapsed / (elapsed + ETA) is the job's share done.
        return 100.0 * pr["elapsed_s"] / (pr["elapsed_s"] + pr["eta_s"])
    return None


def _seconds_per_frame(jobs: list[p.JobInfo]) -> float | None:
    rates = [j.progress["elapsed_s"] / j.n_frames for j in jobs
             if j.state == p.JobState.DONE and j.progress and j.n_frames and j.progress.get("elapsed_s")]
    return statistics.median(rates) if rates else None


def _etas(jobs: list[p.JobInfo]) -> dict[str, str]:
    """When each active job should be done: the running job's own ETA, queued jobs estimated
    (marked ~) from the seconds per frame of jobs that finished."""
    out: dict[str, str] = {}
    clock = 0.0
    running = [j for j in jobs if j.state == p.JobState.RUNNING]
    for j in running:
        eta = (j.progress or {}).get("eta_s")
        if eta is not None:
            out[j.id] = _clock(eta)
            clock += eta
    rate = _seconds_per_frame(jobs)
    if rate is None:
        return out
    queued = [(j.position, j) for j in jobs if j.state == p.JobState.QUEUED and j.position is not None]
    for _, j in sorted(queued, key=lambda entry: entry[0]):
        clock += rate * (j.n_frames or 0)
        out[j.id] = "~" + _clock(clock)
    return out


def _ordered(jobs: list[p.JobInfo]) -> list[p.JobInfo]:
    order: dict[str, int] = {p.JobState.RUNNING: 0, p.JobState.QUEUED: 1}
    active = sorted((j for j in jobs if j.state in order),
                    key=lambda j: (order[j.state], j.position if j.position is not None else 0))
    finished = sorted((j for j in jobs if j.state not in order), key=lambda j: -j.updated)
    return active + finished


def _trim(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def table(jobs: list[p.JobInfo], state: p.QueueState | None = None) -> str:
    etas = _etas(jobs)
    rows = [("#", "JOB", "STATE", "PROGRESS", "ETA", "CLIP [FRAMES]", "PROMPT / RESULT")]
    for j in jobs:
        pr = j.progress or {}
        pct = _percent(j)
        if j.state == p.JobState.RUNNING and pr:
            progress = f"{pr.get('stage')} {pr.get('step')}/{pr.get('total')}"
            progress += f" {pct:3.0f}%" if pct is not None else ""
        elif j.state == p.JobState.DONE:
            progress = "100%"
        else:
            progress = ""
        clip = f"{j.name or Path(j.input).stem} [{j.frames or 'all'}]"
        if j.state == p.JobState.FAILED and j.error:
            result = f"{j.error.get('code')}: {j.error.get('message')}"
        elif j.state == p.JobState.DONE and j.outputs and j.variants:  # several prompts: one output each
            result = f"{len(j.variants) + 1} outputs: {Path(j.outputs[0]).name}, ..."
        elif j.state == p.JobState.DONE and j.outputs:
            out = Path(j.output or j.outputs[0])
            result = f"{out.parent.name}/ ({len(j.outputs)} files)" if "%" in out.name else out.name
        else:
            result = repr(j.prompt)
        position = str(j.position + 1) if j.position is not None else ""
        rows.append((position, j.id, j.state, progress, etas.get(j.id, ""), _trim(clip, 36), _trim(result, 60)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    if state is not None:
        head = "Queue PAUSED: the running job finishes, nothing new starts (`tokenflow queue resume`)" if state.paused \
            else "Queue running"
        lines.append(f"{head}; {state.queued} queued" + (f", running {state.running}" if state.running else "") + ".")
    lines += ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    return "\n".join(lines)


def _download(client: Client, jobs: list[p.JobInfo], folder: Path, done_before: set[str],
              problems: dict[str, str] | None = None) -> dict[str, list[Saved]]:
    """Outputs of the done jobs not yet fetched; prints what it saved. A job whose download
    fails is reported (and kept in `problems`) and the others go on: one moved file must not
    cost the night's other renders."""
    saved: dict[str, list[Saved]] = {}
    for j in jobs:
        if j.state != p.JobState.DONE or j.id in done_before:
            continue
        done_before.add(j.id)
        try:
            files = download_job(client, j.id, folder)
        except (DownloadError, ServerError) as exc:
            print(f"tokenflow: warning: job {j.id}: its outputs were not downloaded: {exc}", file=sys.stderr)
            if problems is not None:
                problems[j.id] = str(exc)
            continue
        saved[j.id] = files
        for f in files:
            note = " (already there)" if f.already_there else ""
            print(f"Saved {f.path}{note}", file=sys.stderr)
    return saved


# --- actions ---


def _spec(job: batch_file.BatchJob, batch: str, total: int | None = None) -> p.JobSpec:
    extra: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(p.JobSpec)}
    if total is not None and "batch_jobs" in names:  # the server queues the batch whole or not at all
        extra["batch_jobs"] = total
    for key in ("preset", "start_number"):
        value = getattr(job, key)
        if value is not None:
            if key not in names:
                raise ClientError(f"{job.where}: this version of TokenFlow has no export presets; leave '{key}' out.")
            extra[key] = value
    return p.JobSpec(
        input=job.input, params=dict(job.params), frames=job.frames, model=job.model, priority=job.priority,
        destination=job.destination, name_template=job.template, name=job.name, batch=batch, row=job.row,
        # The same batch and row always make the same token: re-running a `queue add` that lost its
        # connection half-way cannot queue a job twice.
        client_token=f"{batch}-{job.row}", **extra,
    )


def _new_batch_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def run_add(args: argparse.Namespace, client_factory=_client) -> int:
    prompts = args.prompt or []
    if len(prompts) > 1:
        return _err(f"-p is given {len(prompts)} times, but `queue add` takes one, the prompt for jobs that give "
                    "none: put several prompts per job in the batch file's `variants` key (JSON list, or a CSV "
                    "cell 'snow at night | oil paint'; docs/queue.md).", EXIT_BAD_INPUT)
    defaults = {"prompt": prompts[0] if prompts else None, "negative": args.negative, "seed": args.seed, "steps": args.steps,
                "size": args.size, "preset": args.preset, "template": args.template, "model": args.model,
                "priority": args.priority,
                "destination": absolute(args.destination) if args.destination else None}
    # Every problem in the file is listed in one run: the rows that read are still checked
    # for a destination and on the server, and only then is anything refused.
    problems: list[tuple[str, str]] = []
    try:
        jobs = batch_file.load(args.jobs, defaults, track=args.track)
    except batch_file.BatchError as exc:
        if not exc.readable:
            return _err(str(exc), EXIT_BAD_INPUT)
        jobs, problems = exc.readable, list(exc.problems)
    problems += [(j.where, "no destination: give one with --destination DIR or a 'destination' key") for j in jobs
                 if not j.destination]
    jobs = [j for j in jobs if j.destination]
    batch = _new_batch_id()
    try:
        specs = [_spec(j, batch, len(jobs)) for j in jobs]
    except ClientError as exc:
        return _err(str(exc), EXIT_BAD_INPUT)
    with client_factory(args) as client:
        if "dry_run" not in (client.welcome.capabilities if client.welcome else []):
            return _err("this server cannot check a batch before queueing it; update the server.", EXIT_FAILED)
        # The whole batch is checked on the server before any job is queued.
        outputs = []
        for job, spec in zip(jobs, specs):
            try:
                outputs.append(client.check(spec))
            except ServerError as exc:
                problems.append((job.where, f"{exc.message}" + (f" {exc.hint}" if exc.hint else "")))
        if problems:
            return _err(str(batch_file.BatchError(str(args.jobs), problems)), EXIT_BAD_INPUT)
        if args.dry_run:
            print(f"{len(jobs)} job(s) are fine; nothing was queued. Outputs would be (JOBID = the job's id):")
            for job, out in zip(jobs, outputs):
                print(f"  {job.where}: {_outputs_text(out, job.params)}")
            return EXIT_OK
        queued: list[tuple[batch_file.BatchJob, str, str]] = []
        for job, spec in zip(jobs, specs):
            try:
                accepted = client.submit(spec)
            except ServerError as exc:
                done = ", ".join(jid for _, jid, _ in queued) or "none"
                return _err(f"{job.where} was refused after the check passed: {exc.message} {exc.hint}".strip()
                            + f"\n  Queued before it (batch {batch}): {done}.", EXIT_FAILED)
            info = client.status(accepted.job)
            queued.append((job, accepted.job, _outputs_text(info.output or "", job.params)))
        print(f"Queued {len(queued)} job(s) as batch {batch}.")
        for job, jid, out in queued:
            print(f"  {jid}  {job.where}: {out}")
        if not getattr(args, "wait", False):
            print(f"Follow it with `tokenflow queue wait {batch}`; the summary is written beside the outputs "
                  f"as {summary.filename(batch)} when the last job ends.")
            return EXIT_OK
        return _wait(client, batch, getattr(args, "download", None))


def _latest_batch(client: Client) -> str | None:
    for j in client.list_jobs(limit=200):
        if j.batch:
            return j.batch
    return None


def _status_text(batch: str, jobs: list[p.JobInfo]) -> str:
    ended = sum(j.state in p.TERMINAL_STATES for j in jobs)
    failed = sum(j.state == p.JobState.FAILED for j in jobs)
    text = f"batch {batch}: {ended}/{len(jobs)} ended" + (f", {failed} failed" if failed else "")
    for j in jobs:
        if j.state == p.JobState.RUNNING:
            pr = j.progress or {}
            eta = pr.get("eta_s")
            text += f"; {j.name or j.id} {pr.get('stage', '')} {pr.get('step', '')}/{pr.get('total', '')}"
            text += f" ETA {_clock(eta)}" if eta is not None else ""
    return text


def _wait(client: Client, batch: str, download: Path | None) -> int:
    status = StatusLine()
    fetched: set[str] = set()
    saved: dict[str, list[Saved]] = {}
    problems: dict[str, str] = {}
    while True:
        try:
            jobs = client.list_jobs(batch=batch, limit=10_000)
            if not jobs:
                return _err(f"there is no batch {batch} on this server.", EXIT_BAD_INPUT)
            status.show(_status_text(batch, jobs))
            if download is not None:
                saved.update(_download(client, jobs, download, fetched, problems))
        except ConnectionLost:
            # The server restarted (or the network dropped): the queue lives on in its store.
            status.show(f"batch {batch}: no answer from the server; reconnecting ...", force=True)
            client.reconnect()
            continue
        if all(j.state in p.TERMINAL_STATES for j in jobs):
            break
        time.sleep(POLL_S)
    status.end()
    content = summary.build(batch, [asdict(j) for j in jobs])
    print(summary.text(content))
    # Where the server wrote it: the destination (a sequence's folder sits in it).
    folders = {str(Path(j.output).parent.parent if "%" in Path(j.output).name else Path(j.output).parent)
               for j in jobs if j.output}
    for folder in sorted(folders):
        print(f"Summary on the server: {Path(folder) / summary.filename(batch)}")
    if download is not None:
        for entry in content["jobs"]:
            files = saved.get(entry["job"], [])
            entry["server_outputs"] = entry["outputs"]
            entry["outputs"] = [str(f.path) for f in files]
            entry["sha256"] = {str(f.path): f.sha256 for f in files}
            if entry["job"] in problems:
                entry["download_error"] = problems[entry["job"]]
        path = summary.write(content, download)
        print(f"Summary here: {path}")
    return EXIT_OK if content["succeeded"] == len(jobs) and not problems else EXIT_FAILED


def _outputs_text(output: str, params: dict) -> str:
    """A job's output as `queue add` shows it: with several prompts, each prompt's (as the server names them)."""
    prompts = [str(params.get("prompt", "")), *params.get("variants", ())]
    return ", ".join(prompt_outputs(output, prompts)) if output else output


def run_wait(args: argparse.Namespace) -> int:
    with _client(args) as client:
        batch = args.batch_id or _latest_batch(client)
        if batch is None:
            return _err("no batch has been queued on this server; queue one with `tokenflow queue add JOBS`.",
                        EXIT_BAD_INPUT)
        return _wait(client, batch, getattr(args, "download", None))


def run_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        state = client.queue()
        if args.batch:
            jobs = client.list_jobs(batch=args.batch, limit=10_000)
        elif args.all:
            jobs = client.list_jobs(limit=1000)
        else:
            jobs = client.list_jobs(states=[p.JobState.RUNNING, p.JobState.QUEUED], limit=10_000)
            jobs += client.list_jobs(states=[s for s in p.JobState if s.terminal], limit=_FINISHED_SHOWN)
        jobs = _ordered(jobs)
        if args.json:
            print(json.dumps({"paused": state.paused, "jobs": [asdict(j) for j in jobs]}, indent=2))
        else:
            print(table(jobs, state) if jobs else f"{table([], state).splitlines()[0]}\nNo jobs.")
        if args.download is not None:
            _download(client, jobs, args.download, set())
    return EXIT_OK


def run_remove(args: argparse.Namespace) -> int:
    code = EXIT_OK
    with _client(args) as client:
        # `delete` removes a finished job's stored data (never its outputs) on servers that offer it.
        can_delete = "delete" in (client.welcome.capabilities if client.welcome else [])
        for job in args.job:
            try:
                info = client.status(job)
                if info.state in (p.JobState.QUEUED, p.JobState.RUNNING):
                    info = client.cancel(job)
                    if info.state == p.JobState.RUNNING:
                        print(f"Job {job} is running: cancelling it ...", file=sys.stderr)
                        client.wait(job)
                if can_delete:
                    client.request(p.Delete(), job=job)
                print(f"Removed job {job} from the queue." + ("" if can_delete else
                      " Its record stays in `tokenflow jobs list` (this server cannot delete jobs)."))
            except ServerError as exc:
                code = _err(f"job {job}: {exc}", EXIT_BAD_INPUT)
    return code


def run(args: argparse.Namespace) -> int:
    action = args.queue_action or "list"
    try:
        if action == "add":
            return run_add(args)
        if action == "wait":
            return run_wait(args)
        if action == "list":
            return run_list(args)
        if action == "remove":
            return run_remove(args)
        with _client(args) as client:
            if action in ("pause", "resume"):
                state = client.queue(action)
                print("Queue paused: the running job finishes, nothing new starts. `tokenflow queue resume` "
                      "starts it again." if state.paused else f"Queue running; {state.queued} job(s) queued.")
                return EXIT_OK
            if action == "retry":
                for job in args.job:
                    info = client.retry(job)
                    place = info.position + 1 if info.position is not None else "?"
                    print(f"Job {info.id} queued again (position {place}); "
                          f"its output will be {info.output}.")
                return EXIT_OK
            if action == "move":
                if args.position < 1:
                    return _err("POSITION counts from 1 (1 = next to run).", EXIT_BAD_INPUT)
                info = client.reorder(args.job, position=args.position - 1)
                where = f"number {info.position + 1} in the queue" if info.position is not None else info.state
                print(f"Job {info.id} is now {where}.")
                return EXIT_OK
    except ServerError as exc:
        return _err(str(exc), EXIT_BAD_INPUT)
    except (DownloadError, ClientError) as exc:
        return _err(str(exc), EXIT_FAILED)
    return _err(f"unknown action {action!r}", EXIT_BAD_INPUT)
