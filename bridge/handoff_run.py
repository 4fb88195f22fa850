"""The project's side of an editor handoff: `python -m bridge.handoff_run`.

An editor's launcher (Resolve, Blender) starts this in the project's environment, writes
one `HandoffRequest` as JSON to its stdin (or passes `--request FILE`), and reads
`HandoffResult` lines from its stdout (see bridge/handoff.py). Everything else this
prints goes to stderr, so the launcher can show it as a log.

- mode "submit": each clip goes to the TokenFlow server (a local `tokenflow serve` is
  started when none answers on a loopback endpoint), one `queued` line per accepted job,
  then one `done` / `failed` / `cancelled` line per clip as the jobs end.
- mode "panel": `tokenflow panel --handoff -` opens the panel with the clips loaded and
  prints the result lines itself; this process passes them through.
- mode "ask": a small dialog (bridge/prompt_dialog.py) asks for the prompt, then it goes
  on as "submit", or as "panel" when the user asks for the panel or no dialog can be
  shown. Closing the dialog prints one `cancelled` line per clip, with no job id.

Exit status: 0 when every clip is done, 1 when any failed or was cancelled, 2 for a bad
request.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Optional, TextIO

from bridge import protocol as p
from bridge.client import Client, ClientError, ConnectionLost, EventKind, ServerError, default_endpoint
from dataclasses import replace

from bridge.handoff import ClipRef, HandoffError, HandoffRequest, HandoffResult

EXIT_DONE = 0
EXIT_NOT_ALL_DONE = 1
EXIT_BAD_REQUEST = 2

# How long an auto-started server may take to answer (it loads the model first).
SERVER_START_TIMEOUT_S = 300.0
# How long a server that runs has to answer a hello (a local one answers in milliseconds).
CONNECT_TIMEOUT_S = 3.0
# Suffix of the default output (ProRes 422 HQ .mov: every editor reads it without a transcode,
# including DaVinci Resolve's free edition on Linux, which decodes no H.264).
DEFAULT_MOVIE_SUFFIX = ".mov"
IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".exr")


class AutoStartError(ClientError):
    """A local server could not be started; the message says why and what to do."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _emit(result: HandoffResult, out: TextIO) -> None:
    out.write(result.to_line() + "\n")
    out.flush()


# --- outputs ---


def _slug(text: str, limit: int = 32) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
    return slug[:limit].rstrip("-") or "edit"


def output_for(clip: ClipRef, request: HandoffRequest) -> str:
    """Where this clip's result goes: a new movie, or a new folder holding an image sequence.

    Beside the source media unless the request names `output_dir`; never an existing file
    or folder (a counter is added), so nothing the user has is overwritten.
    """
    folder = Path(request.output_dir).expanduser() if request.output_dir else Path(clip.media).parent
    base = f"{Path(clip.media).stem}_{clip.first}-{clip.last}_{_slug(request.prompt or '')}"
    suffix = _suffix_for(request.preset)
    for n in range(1, 10_000):
        name = base if n == 1 else f"{base}_{n}"
        if suffix in IMAGE_SUFFIXES:
            candidate = folder / name
            if not candidate.exists():
                return str(candidate / f"{name}_%06d{suffix}")
        else:
            candidate = folder / f"{name}{suffix}"
            if not candidate.exists():
                return str(candidate)
    raise HandoffError(f"output_dir: no free output name for {base} in {folder}")


def _suffix_for(preset: Optional[str]) -> str:
    """The file suffix an export preset writes (`tokenflow formats`; aliases like png, mov, exr work)."""
    if not preset:
        return DEFAULT_MOVIE_SUFFIX
    from bridge.media.presets import get_preset

    try:
        return get_preset(preset).extension
    except ValueError as exc:
        raise HandoffError(f"preset: {exc}") from None


def job_spec(clip: ClipRef, request: HandoffRequest, output: str) -> p.JobSpec:
    params: dict = dict(request.params)
    params["prompt"] = request.prompt
    if request.negative_prompt is not None:
        params["negative_prompt"] = request.negative_prompt
    if request.seed is not None:
        params["seed"] = request.seed
    return p.JobSpec(input=clip.media, params=params, frames=f"{clip.first}:{clip.last}", output=output,
                     preset=request.preset, client_token=uuid.uuid4().hex)


def result_of(index: int, event, output: str, request: HandoffRequest) -> HandoffResult:
    """The HandoffResult for a job's terminal event."""
    b = event.body
    common = dict(clip_index=index, job_id=event.job, prompt=request.prompt, seed=request.seed)
    if event.kind is EventKind.DONE:
        if Path(output).suffix.lower() in IMAGE_SUFFIXES and "%" in Path(output).name:
            return HandoffResult(state="done", output=output, first_number=b.first_frame,
                                 last_number=b.first_frame + b.frames - 1, **common)
        return HandoffResult(state="done", output=b.outputs[0] if b.outputs else output, **common)
    if event.kind is EventKind.FAILED:
        return HandoffResult(state="failed", message=f"{b.message} {b.hint}".strip(), **common)
    return HandoffResult(state="cancelled", message=f"The job was cancelled ({b.reason}).", **common)


# --- the server ---


def _is_local(endpoint: str) -> bool:
    return endpoint.startswith("ipc://") or bool(re.match(r"tcp://(127\.0\.0\.1|localhost|\[::1\]):\d+$", endpoint))


def _serve_log() -> Path:
    folder = Path(tempfile.gettempdir()) / f"tokenflow-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / "serve-autostart.log"


def connect(endpoint: Optional[str], *, start_server: bool = True,
            start_timeout: float = SERVER_START_TIMEOUT_S) -> Client:
    """A connected client; starts `tokenflow serve` on a local endpoint when nobody answers."""
    endpoint = endpoint or default_endpoint()
    client = Client(endpoint, timeout=CONNECT_TIMEOUT_S, name="tokenflow-handoff")
    try:
        client.connect()
        return client
    except ConnectionLost:
        if not (start_server and _is_local(endpoint)):
            raise
    log = _serve_log()
    command = [sys.executable, "-m", "server.cli", "serve", "--bind", endpoint]
    with open(log, "ab") as handle:
        # Its own session: the server outlives this handoff, so the next one finds the model loaded.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=handle, stderr=handle,
                                   start_new_session=True)
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


def run_submit(request: HandoffRequest, client: Client, out: TextIO) -> int:
    jobs: list[tuple[int, str, str]] = []  # (clip index, job id, output)
    all_done = True
    for index, clip in enumerate(request.clips):
        try:
            output = output_for(clip, request)
            accepted = client.submit(job_spec(clip, request, output))
        except ServerError as exc:
            _emit(HandoffResult(clip_index=index, state="failed", prompt=request.prompt, seed=request.seed,
                                message=str(exc)), out)
            all_done = False
            continue
        except HandoffError as exc:
            _emit(HandoffResult(clip_index=index, state="failed", message=str(exc)), out)
            all_done = False
            continue
        jobs.append((index, accepted.job, output))
        _emit(HandoffResult(clip_index=index, state="queued", job_id=accepted.job, output=output,
                            prompt=request.prompt, seed=request.seed), out)
        _log(f"{clip.name or Path(clip.media).name} [{clip.first}:{clip.last}]: job {accepted.job} queued")
    pending = list(jobs)
    try:
        while pending:
            index, job, output = pending[0]
            result = result_of(index, client.wait(job), output, request)
            pending.pop(0)
            _emit(result, out)
            all_done &= result.state == "done"
    except KeyboardInterrupt:  # the launcher stopped us: do not leave jobs running for nobody
        for index, job, _ in pending:
            try:
                client.cancel(job)
            except ClientError:
                pass
            _emit(HandoffResult(clip_index=index, state="cancelled", job_id=job,
                                message="Cancelled from the editor."), out)
        return EXIT_NOT_ALL_DONE
    return EXIT_DONE if all_done else EXIT_NOT_ALL_DONE


def run_panel(request: HandoffRequest, out: TextIO) -> int:
    """Open the panel with the clips loaded; its result lines pass through to our stdout."""
    command = [sys.executable, "-m", "server.cli", "panel", "--handoff", "-"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
            _emit(HandoffResult(clip_index=index, state="failed", message=(
                f"The TokenFlow panel did not open (`tokenflow panel` exited with {code}; its messages are above). "
                "Check the environment with `tokenflow doctor`.")), out)
        return EXIT_NOT_ALL_DONE
    return code


def _ask_with_dialog(request: HandoffRequest):
    from bridge.prompt_dialog import DialogUnavailable, ask

    try:
        return ask([c.name or Path(c.media).name for c in request.clips])
    except DialogUnavailable as exc:
        _log(f"No prompt dialog here ({exc}); opening the panel instead.")
        return ("panel", None, None)


def answered(request: HandoffRequest, ask_fn: Callable) -> Optional[HandoffRequest]:
    """Mode "ask" made concrete by the dialog's answer; None when the user cancelled."""
    answer = ask_fn(request)
    if answer is None:
        return None
    mode, prompt, seed = answer
    if mode == "panel":
        return replace(request, mode="panel")
    return replace(request, mode="submit", prompt=prompt, seed=seed if seed is not None else request.seed)


def _read_request(source: str) -> HandoffRequest:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    return HandoffRequest.from_json(text)


def _interrupt_on_term() -> None:
    def handler(signum, frame):  # noqa: ARG001 - signal signature
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: Optional[list[str]] = None, out: TextIO = sys.stdout,
         connect_fn: Callable[..., Client] = connect, ask_fn: Callable = _ask_with_dialog) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.handoff_run",
                                     description="Run an editor's handoff request (see bridge/handoff.py).")
    parser.add_argument("--request", default="-", metavar="FILE", help="the request JSON; - reads stdin (default)")
    parser.add_argument("--server", metavar="ENDPOINT", help="server endpoint (default: $TOKENFLOW_SERVER or local)")
    parser.add_argument("--no-start-server", action="store_true", help="fail instead of starting a local server")
    args = parser.parse_args(argv)
    try:
        request = _read_request(args.request)
    except (HandoffError, OSError) as exc:
        _log(f"tokenflow handoff: bad request: {exc}")
        return EXIT_BAD_REQUEST
    if request.mode == "ask":
        concrete = answered(request, ask_fn)
        if concrete is None:
            for index in range(len(request.clips)):
                _emit(HandoffResult(clip_index=index, state="cancelled", message="Closed without editing."), out)
            return EXIT_NOT_ALL_DONE
        request = concrete
    if request.mode == "panel":
        return run_panel(request, out)
    _interrupt_on_term()
    try:
        client = connect_fn(args.server, start_server=not args.no_start_server)
    except ClientError as exc:
        for index in range(len(request.clips)):
            _emit(HandoffResult(clip_index=index, state="failed", prompt=request.prompt, seed=request.seed,
                                message=str(exc)), out)
        return EXIT_NOT_ALL_DONE
    try:
        return run_submit(request, client, out)
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())
