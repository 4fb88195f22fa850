"""`tokenflow install|uninstall desktop|service` into a temporary home: real files, real validators."""

from __future__ import annotations

import json
import platform
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bridge import installers
from bridge.installers import OWNED_MARK, InstallContext, InstallError, desktop, service, tokenflow_command
from cli.launch import tokenflow_command as launch_tokenflow
from cli.main import main

SYSTEM_PATH = "/usr/bin:/bin"
pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="desktop entries and systemd units are Linux")


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A fresh HOME with no XDG overrides, and a PATH without systemctl (as in a container)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return home


def _ctx(home: Path, **kw) -> InstallContext:
    return InstallContext(launcher=launch_tokenflow, python=Path(sys.executable), home=home, system="Linux", env={"PATH": ""}, **kw)


def _entry(home: Path) -> Path:
    return home / ".local/share/applications/tokenflow-panel.desktop"


def _unit(home: Path) -> Path:
    return home / ".config/systemd/user/tokenflow.service"


def _validate(entry: Path, unit: Path) -> None:
    """The freedesktop and systemd validators, where this machine has them (Debian: desktop-file-utils, systemd)."""
    validator = shutil.which("desktop-file-validate", path=SYSTEM_PATH)
    if validator:
        subprocess.run([validator, str(entry)], check=True)
    analyze = shutil.which("systemd-analyze", path=SYSTEM_PATH)
    if analyze:  # also checks that ExecStart names an executable that exists
        subprocess.run([analyze, "verify", str(unit)], check=True, capture_output=True)


def _key(text: str, key: str) -> str:
    return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith(key + "="))


def test_install_list_and_uninstall_desktop_and_service(home, capsys):
    assert main(["install", "desktop"]) == 0
    assert main(["install", "service"]) == 0
    out = capsys.readouterr().out
    entry, unit = _entry(home), _unit(home)
    assert f"Wrote {entry}" in out and f"Wrote {unit}" in out
    # No user manager here: the exact commands are printed instead of run.
    assert "systemctl --user daemon-reload" in out and "systemctl --user enable --now tokenflow.service" in out

    command = tokenflow_command(_ctx(home), "panel")
    assert Path(command.executable).is_absolute()
    assert _key(entry.read_text(), "Exec") == " ".join(command.argv) + " %f"  # a video opened with it
    assert _key(entry.read_text(), "Icon") == str(home / ".local/share/icons/hicolor/scalable/apps/tokenflow.svg")
    assert Path(_key(entry.read_text(), "Icon")).read_text().count(OWNED_MARK) == 1
    assert _key(unit.read_text(), "ExecStart") == " ".join(tokenflow_command(_ctx(home), "serve").argv)
    _validate(entry, unit)

    assert main(["install", "--list", "--json"]) == 0
    listed = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed["desktop"]["installed"] and listed["service"]["installed"]
    assert listed["desktop"]["advice"] == "" and str(entry) in listed["desktop"]["where"]

    # As `systemctl --user enable` (run by the user, elsewhere) leaves it; removed with the unit.
    wants = unit.parent / "default.target.wants" / "tokenflow.service"
    wants.parent.mkdir()
    wants.symlink_to(unit)
    assert main(["uninstall", "service"]) == 0 and main(["uninstall", "desktop"]) == 0
    assert not entry.exists() and not unit.exists() and not wants.is_symlink()
    assert not (home / ".local/share/icons/hicolor/scalable/apps/tokenflow.svg").exists()
    capsys.readouterr()
    assert main(["install", "--list", "--json"]) == 0
    listed = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    assert not listed["desktop"]["installed"] and "tokenflow install desktop" in listed["desktop"]["advice"]


def test_dry_run_writes_nothing_and_says_what_it_would_write(home, capsys):
    assert main(["install", "desktop", "--dry-run"]) == 0
    assert main(["install", "service", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"Would write {_entry(home)}" in out and f"Would write {_unit(home)}" in out
    assert "Would run: systemctl --user daemon-reload" in out
    assert [p for p in home.rglob("*") if p.is_file()] == []

    main(["install", "desktop"])
    capsys.readouterr()
    assert main(["uninstall", "desktop", "--dry-run"]) == 0
    assert f"Would remove {_entry(home)}" in capsys.readouterr().out and _entry(home).exists()


def test_a_users_own_file_of_the_same_name_is_never_replaced_or_removed_without_force(home, capsys):
    entry, unit = _entry(home), _unit(home)
    for path in (entry, unit):
        path.parent.mkdir(parents=True)
        path.write_text("# my own\n")
    assert main(["install", "desktop"]) == 1
    assert main(["install", "service"]) == 1
    err = capsys.readouterr().err
    assert f"{entry} exists and was not written by tokenflow" in err and "--force" in err
    # Refused before anything was written: not even the icon.
    assert not (home / ".local/share/icons").exists()
    assert main(["uninstall", "desktop"]) == 0 and main(["uninstall", "service"]) == 0
    assert f"Kept {entry}" in capsys.readouterr().out
    assert entry.read_text() == "# my own\n" and unit.read_text() == "# my own\n"

    assert main(["install", "desktop", "--force"]) == 0
    assert OWNED_MARK in entry.read_text()


def test_launcher_paths_with_spaces_dollars_and_percents_are_quoted_for_each_format(tmp_path):
    env_dir = tmp_path / "My Env $HOME 100%" / "bin"
    env_dir.mkdir(parents=True)
    script = env_dir / "tokenflow"
    script.write_text("#!/bin/sh\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    ctx = InstallContext(launcher=launch_tokenflow, python=env_dir / "python", home=tmp_path / "home", system="Linux", env={})
    result = desktop.install(ctx)
    text = desktop.entry_path(ctx).read_text()
    # Desktop Entry spec: quote, backslash-escape `$` inside quotes, then escape the backslash
    # once more as a string value; `%` doubles.
    assert _key(text, "Exec") == f'"{env_dir.parent.parent}/My Env \\\\$HOME 100%%/bin/tokenflow" panel %f'
    assert result.written[-1] == desktop.entry_path(ctx)

    service.install(ctx)
    unit_text = service.unit_path(ctx).read_text()
    # systemd: `$$` and `%%` are a literal `$` and `%`; verify resolves the quoted path to the real script.
    assert _key(unit_text, "ExecStart") == f'"{env_dir.parent.parent}/My Env $HOME 100%%/bin/tokenflow" serve'
    _validate(desktop.entry_path(ctx), service.unit_path(ctx))


FAKE_SYSTEMCTL = """#!/bin/sh
# Records each call and whether the unit file existed at that moment.
if [ -f "{unit}" ]; then state=present; else state=absent; fi
echo "$* [$state]" >> "{log}"
case "$2" in is-active) echo active;; esac
exit 0
"""


def test_service_is_enabled_and_started_when_the_user_manager_answers_and_stopped_before_removal(home, tmp_path):
    # The systemd user manager cannot run in this container; a systemctl that records its calls stands in.
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "bin" / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(unit=_unit(home), log=log))
    fake.chmod(0o755)

    assert main(["install", "service"]) == 0
    calls = log.read_text().splitlines()
    assert "--user daemon-reload [present]" in calls and "--user enable --now tokenflow.service [present]" in calls
    assert calls.index("--user daemon-reload [present]") < calls.index("--user enable --now tokenflow.service [present]")

    log.unlink()
    assert main(["uninstall", "service"]) == 0
    calls = log.read_text().splitlines()
    # Stopped and disabled while the unit still existed, then the manager reloaded without it.
    assert "--user disable --now tokenflow.service [present]" in calls
    assert calls[-1] == "--user daemon-reload [absent]"
    assert not _unit(home).exists()


def test_a_foreign_unit_is_neither_stopped_nor_disabled(home, tmp_path):
    log = tmp_path / "systemctl.log"
    fake = tmp_path / "bin" / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(unit=_unit(home), log=log))
    fake.chmod(0o755)
    _unit(home).parent.mkdir(parents=True)
    _unit(home).write_text("[Service]\nExecStart=/usr/bin/true\n")
    assert main(["uninstall", "service"]) == 0
    assert not log.exists() or "disable" not in log.read_text()
    assert _unit(home).read_text() == "[Service]\nExecStart=/usr/bin/true\n"


@pytest.mark.parametrize("system,words", [("Darwin", "Automator"), ("Windows", "Shortcut")])
def test_other_systems_are_told_what_to_do_instead(tmp_path, system, words):
    ctx = InstallContext(launcher=launch_tokenflow, python=Path(sys.executable), home=tmp_path, system=system, env={})
    with pytest.raises(InstallError, match=words) as info:
        desktop.install(ctx)
    assert tokenflow_command(ctx, "panel").argv[0] in str(info.value)
    assert not desktop.status(ctx).installed and words in desktop.status(ctx).advice
    with pytest.raises(InstallError, match="no systemd"):
        service.install(ctx)
    assert list(tmp_path.iterdir()) == []


def test_a_target_not_in_this_version_is_listed_as_not_available(home, monkeypatch, capsys):
    monkeypatch.setitem(installers.TARGET_MODULES, "nowhere", "bridge.installers.nowhere")
    assert main(["install", "nowhere"]) == 1
    assert "not part of this version" in capsys.readouterr().err
    assert main(["install", "--list"]) == 0
    assert "nowhere  not available in this version" in capsys.readouterr().out


def test_without_a_console_script_the_launchers_run_the_module_with_the_checkout_on_pythonpath(tmp_path):
    # A checkout used without `pip install`: no `tokenflow` beside the interpreter.
    env_bin = tmp_path / "env" / "bin"
    env_bin.mkdir(parents=True)
    (env_bin / "python").symlink_to(sys.executable)
    ctx = InstallContext(launcher=launch_tokenflow, python=env_bin / "python", home=tmp_path / "home", system="Linux", env={})
    checkout = str(Path(installers.__file__).resolve().parents[2])
    command = tokenflow_command(ctx, "serve")
    assert command.argv == [str(env_bin / "python"), "-m", "cli", "serve"]
    assert command.env == {"PYTHONPATH": checkout}

    desktop.install(ctx)
    service.install(ctx)
    assert _key(desktop.entry_path(ctx).read_text(), "Exec") == (
        f"env PYTHONPATH={checkout} {env_bin / 'python'} -m cli panel %f")
    unit_text = service.unit_path(ctx).read_text()
    assert f"Environment=PYTHONPATH={checkout}" in unit_text
    _validate(desktop.entry_path(ctx), service.unit_path(ctx))
    # That command starts tokenflow (`models --help`, quickly) from outside the checkout; run with this
    # environment's interpreter, since the symlink above has no environment of its own.
    done = subprocess.run([sys.executable, *command.argv[1:-1], "models", "--help"], env={**command.env, "PATH": "/usr/bin:/bin"},
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: tokenflow models" in done.stdout
