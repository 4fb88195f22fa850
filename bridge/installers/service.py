"""`tokenflow install service`: `tokenflow serve` as a systemd user service (Linux).

The unit goes to `$XDG_CONFIG_HOME/systemd/user/tokenflow.service` and runs this
environment's `tokenflow serve` by absolute path. When `systemctl --user` can reach the
user's service manager the unit is enabled and started at once; otherwise (a container,
an SSH session without a user bus) the exact commands are printed for the user to run.
Removal stops and disables the service before the file goes, so nothing keeps running
from a unit that no longer exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from bridge.installers import InstallContext, InstallError, InstallResult, TargetStatus, tokenflow_command, xdg_dir
from bridge.installers.owned import is_owned, remove_owned, write_owned
from bridge.installers.templates import render

SUMMARY = "`tokenflow serve` as a per-user service that starts at login (Linux, systemd)"
NAME = "service"
UNIT = "tokenflow.service"
SYSTEMCTL_TIMEOUT_S = 30.0


def unit_dir(ctx: InstallContext) -> Path:
    return xdg_dir(ctx, "XDG_CONFIG_HOME", ".config") / "systemd" / "user"


def unit_path(ctx: InstallContext) -> Path:
    return unit_dir(ctx) / UNIT


def env_file(ctx: InstallContext) -> Path:
    """The user's own settings for the service; the unit reads it as %E/tokenflow/serve.env."""
    return xdg_dir(ctx, "XDG_CONFIG_HOME", ".config") / "tokenflow" / "serve.env"


def _systemd_word(arg: str, *, command: bool = False) -> str:
    """One ExecStart= word: `%` is a specifier everywhere and `$` a variable in the arguments
    (not in the command's own path), so each is doubled where systemd would expand it."""
    arg = arg.replace("%", "%%")
    if not command:
        arg = arg.replace("$", "$$")
    if re.search(r"[\s\"'\\;]", arg):
        arg = '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return arg


def render_unit(ctx: InstallContext) -> str:
    command = tokenflow_command(ctx, "serve")
    environment = "".join(f"Environment={_systemd_word(f'{k}={v}')}\n" for k, v in command.env.items())
    return render("linux/tokenflow.service.in", exec=" ".join(_systemd_word(a, command=i == 0) for i, a in enumerate(command.argv)),
                  environment=environment, env_file=str(env_file(ctx)))


def _systemctl(ctx: InstallContext) -> str | None:
    """Path of `systemctl` if the user's service manager answers through it, else None."""
    exe = shutil.which("systemctl", path=ctx.env.get("PATH"))
    if exe is None:
        return None
    try:
        probe = subprocess.run([exe, "--user", "show-environment"], env=dict(ctx.env), capture_output=True,
                               timeout=SYSTEMCTL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return exe if probe.returncode == 0 else None


def _run(exe: str, args: list[str], ctx: InstallContext, result: InstallResult) -> bool:
    shown = "systemctl --user " + " ".join(args)
    try:
        done = subprocess.run([exe, "--user", *args], env=dict(ctx.env), capture_output=True, text=True,
                              timeout=SYSTEMCTL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        result.notes.append(f"`{shown}` did not run ({exc}); run it yourself.")
        return False
    if done.returncode != 0:
        result.notes.append(f"`{shown}` failed: {(done.stderr or done.stdout).strip()} Run it yourself once "
                            "the problem is fixed.")
        return False
    result.notes.append(f"Ran `{shown}`.")
    return True


def _manual(ctx: InstallContext) -> str:
    serve = " ".join(tokenflow_command(ctx, "serve").argv)
    if ctx.system == "Darwin":
        return (f"macOS has no systemd: run `{serve}` in a Terminal window (keep it open), or add it to "
                "Login Items through a small Automator app.")
    if ctx.system == "Windows":
        return (f"Windows has no systemd: run `{serve}` in a terminal, or start it at logon with Task Scheduler "
                "(Create Task > Triggers: At log on > Actions: Start a program, that command).")
    return f"this system has no systemd user services; run `{serve}` yourself."


def install(ctx: InstallContext) -> InstallResult:
    if ctx.system != "Linux":
        raise InstallError(_manual(ctx))
    result = InstallResult(NAME)
    unit, text = unit_path(ctx), render_unit(ctx)
    replaced = unit.exists() and unit.read_text(encoding="utf-8", errors="replace") != text
    write_owned(unit, text, ctx, result)
    steps = [["daemon-reload"], ["enable", "--now", UNIT]]
    if replaced:
        steps.append(["try-restart", UNIT])  # a running server picks up the new unit (queued jobs are kept)
    if ctx.dry_run:
        result.notes.append("Would run: " + " && ".join("systemctl --user " + " ".join(s) for s in steps) + ".")
        return result
    exe = _systemctl(ctx)
    if exe is not None:
        if all(_run(exe, step, ctx, result) for step in steps):
            result.notes.append("The server runs now and starts at every login; its log: "
                                "`journalctl --user -u tokenflow -f`.")
    else:
        result.notes.append("systemd's user manager cannot be reached from here (no systemctl, or no user bus in "
                            "this session). To start the service, and at every login, run in your desktop session:\n"
                            "  systemctl --user daemon-reload\n  systemctl --user enable --now " + UNIT)
    result.notes.append(f"Settings such as TOKENFLOW_MODEL=NAME go in {env_file(ctx)} (one per line); "
                        f"then `systemctl --user restart {UNIT}`. To keep it running after logout: "
                        "`loginctl enable-linger $USER`.")
    return result


def _wants_link(ctx: InstallContext) -> Path:
    return unit_dir(ctx) / "default.target.wants" / UNIT


def uninstall(ctx: InstallContext) -> InstallResult:
    result = InstallResult(NAME)
    unit = unit_path(ctx)
    if not unit.exists():
        result.notes.append(f"Nothing to remove: no TokenFlow service at {unit}.")
        return result
    owned = is_owned(unit) or ctx.force
    if owned and not ctx.dry_run:
        exe = _systemctl(ctx)
        if exe is not None:
            _run(exe, ["disable", "--now", UNIT], ctx, result)
        else:
            result.notes.append("systemd's user manager cannot be reached from here; if the service runs in "
                                f"another session, stop it there: `systemctl --user disable --now {UNIT}`.")
    elif owned:
        result.notes.append(f"Would run: systemctl --user disable --now {UNIT}, then daemon-reload.")
    remove_owned(unit, ctx, result)
    link = _wants_link(ctx)
    # `disable` removes this link; without a reachable systemd we remove it ourselves, and only ours.
    if unit in result.removed and link.is_symlink() and Path(link.readlink()).name == UNIT:
        result.removed.append(link)
        if not ctx.dry_run:
            link.unlink()
    if unit in result.removed and not ctx.dry_run and (exe := _systemctl(ctx)) is not None:
        _run(exe, ["daemon-reload"], ctx, result)
    return result


def status(ctx: InstallContext) -> TargetStatus:
    if ctx.system != "Linux":
        return TargetStatus(NAME, False, [], _manual(ctx))
    unit = unit_path(ctx)
    if not unit.exists():
        return TargetStatus(NAME, False, [], "`tokenflow install service` runs the server at every login.")
    if not is_owned(unit):
        return TargetStatus(NAME, False, [unit], f"{unit} was not written by tokenflow; "
                            "`tokenflow install service --force` replaces it.")
    advice = ""
    exe = _systemctl(ctx)
    if exe is not None:
        active = subprocess.run([exe, "--user", "is-active", UNIT], env=dict(ctx.env), capture_output=True,
                                text=True, timeout=SYSTEMCTL_TIMEOUT_S).stdout.strip()
        if active != "active":
            advice = (f"installed but {active or 'not running'}: `systemctl --user start {UNIT}`; "
                      "why it stopped: `journalctl --user -u tokenflow`.")
    if not advice and unit.read_text(encoding="utf-8") != render_unit(ctx):
        advice = ("the unit differs from what this environment would write (another environment, or an older "
                  "version): `tokenflow install service` updates it.")
    return TargetStatus(NAME, True, [unit], advice)

