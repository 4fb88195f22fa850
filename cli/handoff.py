"""The project's side of an editor handoff: `tokenflow handoff`.

An editor's launcher (Resolve, Blender) starts this in the project's environment, writes
one `HandoffRequest` as JSON to its stdin (or passes `--request FILE`), and reads
`HandoffResult` lines from its stdout (see bridge/editors/handoff.py). Everything else this
prints goes to stderr, so the launcher can show it as a log.

- mode "submit": each clip goes to the TokenFlow server (a local `tokenflow serve` is
  started when none answers on a loopback endpoint) as one job, with every prompt of the
  request in it (`params.variants`); one `queued` line per prompt of an accepted job,
  then one `done` / `failed` / `cancelled` line per prompt as the jobs end, each with
  its `variant` and `prompt` and (done) its own output.
- mode "panel": `tokenflow panel --handoff -` opens the panel with the clips loaded and
  prints the result lines itself; this process passes them through.
- mode "ask": a small dialog (bridge/editors/prompt_dialog.py) asks for the prompt, then it goes
  on as "submit", or as "panel" when the user asks for the panel or no dialog can be
  shown. Closing the dialog prints one `cancelled` line per clip, with no job id.

Exit status: 0 when every clip is done, 1 when any failed or was cancelled, 2 for a bad
request.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO

from bridge.editors.handoff import HandoffError, HandoffRequest, HandoffResult, ResultState, split_prompts
from bridge.editors.handoff_jobs import job_spec, output_for, outputs_for, per_prompt, result_of
from bridge.wire.client import Client, ClientError, ConnectionLost, ServerError, default_endpoint
from bridge.wire.local import can_start_here
from cli.launch import tokenflow_command
from cli.options import connection_options

EXIT_DONE = 0
EXIT_NOT_ALL_DONE = 1
EXIT_BAD_REQUEST = 2

# How long an auto-started server may take to answer (it loads the model first).
SERVER_START_TIMEOUT_S = 300.0
# How long a server that runs has to answer a hello (a local one answers in milliseconds).
CONNECT_TIMEOUT_S = 3.0


class AutoStartError(ClientError):
    """A local server could not be started; the message says why and what to do."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _emit(result: HandoffResult, out: TextIO) -> None:
    out.write(result.to_line() + "\n")
    out.flush()


# --- the server ---


def _serve_log() -> Path:
    folder = Path(tempfile.gettempdir()) / f"tokenflow-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / "serve-autostart.log"


def connect(endpoint: str | None, *, start_server: bool = True,
            start_timeout: float = SERVER_START_TIMEOUT_S) -> Client:
    """A connected client; starts `tokenflow serve` on a local endpoint when nobody answers."""
    endpoint = endpoint or default_endpoint()
    client = Client(endpoint, timeout=CONNECT_TIMEOUT_S, name="tokenflow-handoff")
    try:
        client.connect()
        return client
    except ConnectionLost:
        if not (start_server and can_start_here(endpoint)):
            raise
    log = _serve_log()
    command = tokenflow_command("serve", "--bind", endpoint)
    with open(log, "ab") as handle:
        # Its own session: the server outlives this handoff, so the next one finds the model loaded.
        process = subprocess.Popen(command.argv, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,
                                   env=command.environment(), start_new_session=True)
    _log(f"Started a local TokenFlow server (pid {process.pid}, log {log}); stop it with "
         f"`kill {process.pid}` when you no longer need it.")
    deadline = time.monotonic() + start_timeout
    while True:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise AutoStartError(f"The TokenFlow server stopped at start (exit {process.returncode}); "
                                 f"its log {log} ends with:\n{tail}")
        try:
            client.connect()
            return client
        except ConnectionLost:
            if time.monotonic() > deadline:
                raise AutoStartError(f"The TokenFlow server started (pid {process.pid}) but did not answer in "
                                     f"{start_timeout:.0f} s; see {log}.") from None


# --- modes ---


def _emit_all(results: list[HandoffResult], out: TextIO) -> None:
    for result in results:
        _emit(result, out)


def run_submit(request: HandoffRequest, client: Client, out: TextIO) -> int:
    """One job per clip, every prompt of the request in it (`params.variants`); one line per prompt."""
    jobs: list[tuple[int, str, list[str]]] = []  # (clip index, job id, each prompt's output)
    all_done = True
    for index, clip in enumerate(request.clips):
        try:
            output = output_for(clip, request)
            accepted = client.submit(job_spec(clip, request, output))
        except ServerError as exc:
            _emit_all(per_prompt(index, request, ResultState.FAILED, message=str(exc)), out)
            all_done = False
            continue
        except HandoffError as exc:
            _emit_all(per_prompt(index, request, ResultState.FAILED, message=str(exc)), out)
            all_done = False
            continue
        outputs = outputs_for(output, request)
        jobs.append((index, accepted.job, outputs))
        _emit_all(per_prompt(index, request, ResultState.QUEUED, outputs, job_id=accepted.job), out)
        looks = f" ({len(outputs)} prompts)" if len(outputs) > 1 else ""
        _log(f"{clip.name or Path(clip.media).name} [{clip.first}:{clip.last}]: job {accepted.job} queued{looks}")
    pending = list(jobs)
    try:
        while pending:
            index, job, outputs = pending[0]
            results = result_of(index, client.wait(job), outputs, request)
            pending.pop(0)
            _emit_all(results, out)
            all_done &= all(result.state == ResultState.DONE for result in results)
    except KeyboardInterrupt:  # the launcher stopped us: do not leave jobs running for nobody
        for index, job, _ in pending:
            try:
                client.cancel(job)
            except ClientError:
                pass
            _emit_all(per_prompt(index, request, ResultState.CANCELLED, job_id=job,
                                 message="Cancelled from the editor."), out)
        return EXIT_NOT_ALL_DONE
    return EXIT_DONE if all_done else EXIT_NOT_ALL_DONE


def run_panel(request: HandoffRequest, out: TextIO) -> int:
    """Open the panel with the clips loaded; its result lines pass through to our stdout."""
    command = tokenflow_command("panel", "--handoff", "-")
    process = subprocess.Popen(command.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=command.environment())
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(request.to_json())
    process.stdin.close()
    answered: set[int] = set()
    for line in process.stdout:
        result = HandoffResult.from_line(line.rstrip("\n"))
        if result is not None:
            answered.add(result.clip_index)
            out.write(line)
            out.flush()
        else:
            _log(line.rstrip("\n"))
    code = process.wait()
    if code != 0 and not answered:  # the panel did not open: say so for every clip
        for index in range(len(request.clips)):
            _emit(HandoffResult(clip_index=index, state=ResultState.FAILED, message=(
                f"The TokenFlow panel did not open (`tokenflow panel` exited with {code}; its messages are above). "
                "Check the environment with `tokenflow doctor`.")), out)
        return EXIT_NOT_ALL_DONE
    return code


def _ask_with_dialog(request: HandoffRequest):
    from bridge.editors.prompt_dialog import DialogUnavailable, ask

    try:
        return ask([c.name or Path(c.media).name for c in request.clips])
    except DialogUnavailable as exc:
        _log(f"No prompt dialog here ({exc}); opening the panel instead.")
        return ("panel", None, None)


def answered(request: HandoffRequest, ask_fn: Callable) -> HandoffRequest | None:
    """Mode "ask" made concrete by the dialog's answer; None when the user cancelled."""
    answer = ask_fn(request)
    if answer is None:
        return None
    mode, prompts, seed = answer  # prompts: one prompt, or a list of them (several looks of each clip)
    if mode == "panel":
        return replace(request, mode="panel")
    prompt, variants = split_prompts(prompts)
    return replace(request, mode="submit", prompt=prompt, variants=variants,
                   seed=seed if seed is not None else request.seed)


def _read_request(source: str) -> HandoffRequest:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return HandoffRequest.from_json(text)


def _interrupt_on_term() -> None:
    def handler(signum, frame):  # noqa: ARG001 - signal signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--request", default="-", metavar="FILE", help="the request JSON; - reads stdin (default)")
    parser.add_argument("--no-start-server", action="store_true", help="fail instead of starting a local server")


def _connection() -> argparse.ArgumentParser:
    return connection_options(server_help="server endpoint (default: $TOKENFLOW_SERVER or local)", keys=False,
                              timeout=None)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "handoff", parents=[_connection()], help="run an editor launcher's request (what the Resolve and Blender launchers start)",
        description="Run an editor's handoff request (bridge/editors/handoff.py): a JSON request on stdin or "
        "in a file, result lines on stdout. The Resolve script and the Blender add-on start this.")
    _add_arguments(parser)
    parser.set_defaults(func=lambda args: run(args))


def main(argv: list[str] | None = None, out: TextIO = sys.stdout,
         connect_fn: Callable[..., Client] = connect, ask_fn: Callable = _ask_with_dialog) -> int:
    parser = argparse.ArgumentParser(prog="tokenflow handoff", parents=[_connection()],
                                     description="Run an editor's handoff request (see bridge/editors/handoff.py).")
    _add_arguments(parser)
    return run(parser.parse_args(argv), out, connect_fn, ask_fn)


def run(args: argparse.Namespace, out: TextIO = sys.stdout,
        connect_fn: Callable[..., Client] = connect, ask_fn: Callable = _ask_with_dialog) -> int:
    try:
        request = _read_request(args.request)
    except (HandoffError, OSError) as exc:
        _log(f"tokenflow handoff: bad request: {exc}")
        return EXIT_BAD_REQUEST
    if request.mode == "ask":
        concrete = answered(request, ask_fn)
        if concrete is None:
            for index in range(len(request.clips)):
                _emit(HandoffResult(clip_index=index, state=ResultState.CANCELLED, message="Closed without editing."), out)
            return EXIT_NOT_ALL_DONE
        request = concrete
    if request.mode == "panel":
        return run_panel(request, out)
    _interrupt_on_term()
    try:
        client = connect_fn(args.server, start_server=not args.no_start_server)
    except ClientError as exc:
        for index in range(len(request.clips)):
            _emit_all(per_prompt(index, request, ResultState.FAILED, message=str(exc)), out)
        return EXIT_NOT_ALL_DONE
    try:
        return run_submit(request, client, out)
    finally:
        client.close()
