"""`tokenflow install ofx`: the TokenFlow OpenFX effect where OFX hosts look for plug-ins.

The effect is C++ (packaging/ofx/); this target builds `TokenFlow.ofx.bundle` with CMake
when the bundle is missing or older than its sources, then copies it into the first
folder of $OFX_PLUGIN_PATH, or the standard folder of the OS (`/usr/OFX/Plugins`,
`/Library/OFX/Plugins`, `C:\\Program Files\\Common Files\\OFX\\Plugins`). A marker
file inside the installed bundle carries OWNED_MARK: a bundle without it is somebody
else's and is never replaced or removed without --force. It also records, for this
user, the `tokenflow serve` command the effect runs when its Server parameter is
empty and nothing answers on the user's own socket.
Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bridge import folders
from bridge.installers import OWNED_MARK, InstallContext, InstallError, InstallResult, TargetStatus, tokenflow_command
from bridge.installers.owned import is_owned, remove_owned, write_owned

SUMMARY = "the TokenFlow OpenFX effect (Resolve, Fusion, Nuke, Natron, Vegas: Effects > AI > TokenFlow)"
NAME = "ofx"
BUNDLE = "TokenFlow.ofx.bundle"
SOURCE = Path(__file__).resolve().parents[2] / "packaging" / "ofx"
MARKER = Path("Contents") / "tokenflow-install.txt"
RECORD = "ofx-effect.conf"  # in the user's config folder; read by packaging/ofx/src/endpoint.cpp
# What the build needs, as Debian names the packages (packaging/ofx/build-deps.sh installs them).
BUILD_PACKAGES = ("cmake", "g++", "pkg-config", "libzmq3-dev", "cppzmq-dev", "libmsgpack-cxx-dev")


def arch_dir(system: str) -> str:
    return {"Darwin": "MacOS", "Windows": "Win64"}.get(system, "Linux-x86-64")


def plugin_dir(ctx: InstallContext) -> Path:
    """Where hosts look: the first folder of OFX_PLUGIN_PATH, else the OS's standard folder."""
    listed = [p for p in ctx.env.get("OFX_PLUGIN_PATH", "").split(os.pathsep) if p]
    if listed:
        return Path(listed[0])
    if ctx.system == "Darwin":
        return Path("/Library/OFX/Plugins")
    if ctx.system == "Windows":
        common = ctx.env.get("CommonProgramFiles", r"C:\Program Files\Common Files")
        return Path(common) / "OFX" / "Plugins"
    return Path("/usr/OFX/Plugins")


def build_dir(env: dict[str, str] | None = None) -> Path:
    """The CMake build folder: $TOKENFLOW_OFX_BUILD_DIR, else the user's cache folder (never the source tree)."""
    env = dict(os.environ) if env is None else env
    if env.get("TOKENFLOW_OFX_BUILD_DIR"):
        return Path(env["TOKENFLOW_OFX_BUILD_DIR"])
    return folders.platform_cache_dir() / "ofx-build"


def built_bundle(build: Path) -> Path:
    return build / BUNDLE


def missing_build_tools() -> list[str]:
    """The Debian packages the build lacks here (empty: it can build)."""
    missing = []
    if shutil.which("cmake") is None:
        missing.append("cmake")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        missing.append("g++")
    if shutil.which("pkg-config") is None:
        missing.append("pkg-config")
    include = [Path("/usr/include"), Path("/usr/local/include")]
    for header, package in (("zmq.h", "libzmq3-dev"), ("zmq.hpp", "cppzmq-dev"), ("msgpack.hpp", "libmsgpack-cxx-dev")):
        if not any((d / header).is_file() for d in include):
            missing.append(package)
    return missing


def _sources_newer(binary: Path) -> bool:
    if not binary.is_file():
        return True
    built = binary.stat().st_mtime
    return any(f.stat().st_mtime > built for f in SOURCE.rglob("*") if f.is_file())


def _forget_another_checkouts_configuration(build: Path) -> None:
    """CMake refuses a build folder configured from another source folder (a second checkout,
    or the package reinstalled elsewhere, sharing the cache's build folder). Its generated
    configuration is dropped so this source configures afresh; the folder's other files stay."""
    cache = build / "CMakeCache.txt"
    try:
        lines = cache.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return
    home = next((line.split("=", 1)[1] for line in lines if line.startswith("CMAKE_HOME_DIRECTORY:")), None)
    if home is not None and Path(home).resolve() != SOURCE.resolve():
        cache.unlink()
        shutil.rmtree(build / "CMakeFiles", ignore_errors=True)


def build(build: Path, *, jobs: int = 2) -> tuple[Path, float]:
    """Configure and build the bundle in `build`; returns (bundle, seconds). Raises InstallError with what to do."""
    missing = missing_build_tools()
    if missing:
        raise InstallError(f"Building the OpenFX effect needs {', '.join(missing)}: on Debian or Ubuntu run "
                           f"`sudo apt-get install {' '.join(BUILD_PACKAGES)}` (or packaging/ofx/build-deps.sh).")
    started = time.monotonic()
    _forget_another_checkouts_configuration(build)
    for argv in (["cmake", "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                 ["cmake", "--build", str(build), "--parallel", str(jobs)]):
        run = subprocess.run(argv, capture_output=True, text=True)
        if run.returncode != 0:
            raise InstallError(f"`{' '.join(argv)}` failed:\n{(run.stdout + run.stderr)[-4000:]}")
    return built_bundle(build), time.monotonic() - started


def _marker_text(ctx: InstallContext) -> str:
    return (f"# {OWNED_MARK} (target ofx). `tokenflow uninstall ofx` removes this bundle;\n"
            f"# without this file the bundle is not ours and stays.\nsource = {SOURCE}\n")


def _record_text(ctx: InstallContext) -> str:
    command = tokenflow_command(ctx, "serve")
    lines = [f"# {OWNED_MARK} (target ofx): the command the OpenFX effect runs to start your own server",
             "# when its Server parameter is empty and nothing answers on your socket."]
    lines += [f"arg={a}" for a in command.argv] + [f"env={k}={v}" for k, v in command.env.items()]
    return "\n".join(lines) + "\n"


def record_path(ctx: InstallContext) -> Path:
    override = ctx.env.get(folders.CONFIG_DIR_ENV)
    return (Path(override) if override else folders.platform_config_dir()) / RECORD


def install(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    target = plugin_dir(ctx) / BUNDLE
    marker = target / MARKER
    if target.exists() and not is_owned(marker) and not ctx.force:
        raise InstallError(f"{target} exists and was not installed by tokenflow; move it away, or pass --force "
                           "to replace it.")
    build_folder = build_dir(dict(ctx.env))
    binary = built_bundle(build_folder) / "Contents" / arch_dir(ctx.system) / "TokenFlow.ofx"
    needs_build = _sources_newer(binary)
    if ctx.dry_run:
        result.notes.append(f"Would {'build' if needs_build else 'use'} {built_bundle(build_folder)} "
                            f"and copy it to {target}.")
        result.written += [target, record_path(ctx)]
        return result
    if not _writable(target.parent):
        raise InstallError(f"{target.parent} needs administrator rights to write. Either run "
                           f"`sudo {' '.join(tokenflow_command(ctx, 'install', 'ofx').argv)}`, or install into a "
                           "folder of your own: `OFX_PLUGIN_PATH=~/OFX/Plugins tokenflow install ofx`, and start "
                           "the host with the same OFX_PLUGIN_PATH.")
    if needs_build:
        bundle, seconds = build(build_folder)
        result.notes.append(f"Built {bundle} in {seconds:.0f} s.")
    source = built_bundle(build_folder)
    # Copy beside the target, then swap: a host never sees half a bundle.
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tokenflow-ofx-", dir=target.parent))
    try:
        shutil.copytree(source, staging / BUNDLE, symlinks=True)
        (staging / BUNDLE / MARKER).write_text(_marker_text(ctx), encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging / BUNDLE, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.written.append(target)
    write_owned(record_path(ctx), _record_text(ctx), ctx, result)
    result.notes.append("In the host, look for TokenFlow under the AI group: DaVinci Resolve: Effects Library > "
                        "OpenFX > AI; Nuke: the OFX menu (Other > All plugins > Update first); Natron: AI > "
                        "TokenFlow. Restart the host if it was running.")
    return result


def _writable(folder: Path) -> bool:
    probe = folder
    while not probe.exists():
        probe = probe.parent
    return os.access(probe, os.W_OK)


def uninstall(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    target = plugin_dir(ctx) / BUNDLE
    if target.exists():
        if not is_owned(target / MARKER) and not ctx.force:
            result.notes.append(f"Kept {target}: it was not installed by tokenflow.")
        else:
            result.removed.append(target)
            if not ctx.dry_run:
                if not _writable(target.parent):
                    raise InstallError(f"{target.parent} needs administrator rights to change: run the "
                                       "uninstall with sudo, as the install was.")
                shutil.rmtree(target)
    remove_owned(record_path(ctx), ctx, result)
    if not result.removed and not result.notes:
        result.notes.append(f"Nothing to remove: no TokenFlow effect in {target.parent}.")
    return result


def status(ctx: InstallContext) -> TargetStatus:
    target = plugin_dir(ctx) / BUNDLE
    if not target.exists():
        return TargetStatus(NAME, False, [], f"not installed: `tokenflow install ofx` builds the effect and puts it "
                            f"in {target.parent}.")
    if not is_owned(target / MARKER):
        return TargetStatus(NAME, False, [target], f"{target} was not installed by tokenflow; "
                            "`tokenflow install ofx --force` replaces it.")
    binary = target / "Contents" / arch_dir(ctx.system) / "TokenFlow.ofx"
    if not binary.is_file():
        return TargetStatus(NAME, True, [target], f"the bundle has no {arch_dir(ctx.system)} binary: "
                            "`tokenflow install ofx` rebuilds it.")
    record = record_path(ctx)
    if not record.is_file() or record.read_text(encoding="utf-8") != _record_text(ctx):
        return TargetStatus(NAME, True, [target], "the effect would start another environment's server (or "
                            "none): `tokenflow install ofx` records this one.")
    return TargetStatus(NAME, True, [target, record])
