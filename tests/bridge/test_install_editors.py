"""`tokenflow install|uninstall resolve` into a temporary home, and the installed launcher run as Resolve runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.installers import OWNED_MARK, InstallContext, InstallError
from bridge.installers import resolve as resolve_target
from bridge.installers import tokenflow_command as installer_command
from cli.launch import tokenflow_command
from cli.main import main

REPO = Path(__file__).resolve().parents[2]


def _ctx(home: Path, system: str = "Linux", **kw) -> InstallContext:
    return InstallContext(launcher=tokenflow_command, python=Path(sys.executable), home=home, system=system, env=kw.pop("env", {}), **kw)


@pytest.mark.parametrize("system, env, where", [
    ("Linux", {}, ".local/share/DaVinciResolve/Fusion/Scripts/Utility/TokenFlow.py"),
    ("Darwin", {}, "Library/Application Support/Blackmagic Design/DaVinci Resolve/Fusion/Scripts/Utility/TokenFlow.py"),
    ("Windows", {"APPDATA": "{home}/AppData/Roaming"},
     "AppData/Roaming/Blackmagic Design/DaVinci Resolve/Support/Fusion/Scripts/Utility/TokenFlow.py"),
])
def test_the_launcher_goes_where_resolve_looks_on_each_os(tmp_path, system, env, where):
    ctx = _ctx(tmp_path, system, env={k: v.format(home=tmp_path) for k, v in env.items()})
    result = resolve_target.install(ctx)
    script = tmp_path / where
    assert result.written == [script] and script.is_file()
    text = script.read_text()
    assert OWNED_MARK in text and repr(installer_command(ctx, "handoff").to_dict()) in text and repr(str(REPO / "bridge" / "editors")) in text
    compile(text, str(script), "exec")  # valid Python once the template is filled in
    assert resolve_target.status(ctx).installed and not resolve_target.status(ctx).advice


def test_install_and_uninstall_through_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    script = tmp_path / ".local/share/DaVinciResolve/Fusion/Scripts/Utility/TokenFlow.py"
    assert main(["install", "resolve"]) == 0
    out = capsys.readouterr().out
    assert str(script) in out and "Workspace > Scripts > TokenFlow" in out and script.is_file()
    assert main(["install", "--list", "--json"]) == 0
    listed = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["resolve"]["installed"] is True
    assert main(["uninstall", "resolve"]) == 0
    assert not script.exists()


def test_a_users_own_script_is_neither_replaced_nor_removed(tmp_path):
    ctx = _ctx(tmp_path)
    script = resolve_target.script_path(ctx)
    script.parent.mkdir(parents=True)
    script.write_text("print('mine')\n")
    with pytest.raises(InstallError, match="--force"):
        resolve_target.install(ctx)
    result = resolve_target.uninstall(ctx)
    assert result.removed == [] and script.read_text() == "print('mine')\n"
    assert not resolve_target.status(ctx).installed
    resolve_target.install(_ctx(tmp_path, force=True))
    assert OWNED_MARK in script.read_text()


def _pythons() -> list:
    """The system Python, and the oldest Python the launcher supports (3.7) where this machine has one."""
    found = [shutil.which("python3", path="/usr/bin:/bin") or sys.executable]
    old = os.environ.get("TOKENFLOW_PYTHON37") or shutil.which("python3.7")
    if old and subprocess.run([old, "-c", "pass"], capture_output=True).returncode == 0:  # a pyenv shim may not run
        found.append(old)
    return found


def _run_launcher(script: Path, setup: str, python: str) -> str:
    """The installed script in a bare standard-library Python (no site-packages: -S -I), as Resolve runs it."""
    driver = (
        "import sys, runpy\n"
        f"sys.path.insert(0, {str(REPO)!r})  # for the fake only\n"
        "from tests.bridge.fake_resolve import FakeResolve\n"
        "app = FakeResolve()\n"
        f"{setup}\n"
        f"runpy.run_path({str(script)!r}, init_globals={{'resolve': app}}, run_name='__main__')\n"
        "bad = sorted(m for m in ('zmq', 'msgpack', 'numpy', 'torch', 'PySide6', 'bridge') if m in sys.modules)\n"
        "print('NON-STDLIB:', bad)\n"
    )
    done = subprocess.run([python, "-I", "-S", "-c", driver], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("python", _pythons())
def test_the_installed_launcher_needs_only_the_standard_library(tmp_path, python):
    resolve_target.install(_ctx(tmp_path))
    out = _run_launcher(resolve_target.script_path(_ctx(tmp_path)), "app.project.add_timeline()", python)
    assert "No video clip under the playhead" in out
    assert "NON-STDLIB: []" in out


def test_the_launcher_says_so_when_its_environment_is_gone(tmp_path):
    ctx = InstallContext(launcher=tokenflow_command, python=tmp_path / "gone/bin/python", home=tmp_path, system="Linux")
    resolve_target.install(ctx)
    out = _run_launcher(resolve_target.script_path(ctx), "", _pythons()[0])
    assert "its environment is gone" in out and "tokenflow install resolve" in out
    assert resolve_target.status(_ctx(tmp_path)).advice  # another environment's script is reported
