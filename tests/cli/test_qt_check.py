"""`tokenflow doctor` and the panel's system libraries (issue 20, item 5): a plugin whose libraries
the dynamic linker cannot find is named with the packages to install, not reported "ok"."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from cli import doctor, qt_check

ABSENT = ("libtokenflow-absent-a.so.0", "libtokenflow-absent-b.so.1")

pytestmark = pytest.mark.skipif(sys.platform != "linux" or not shutil.which("gcc") or not shutil.which("ldd"),
                                reason="needs Linux, gcc and ldd")


@pytest.fixture
def plugin_missing_libraries(tmp_path, monkeypatch):
    """A real shared object linking two libraries, built against stand-ins that are then removed:
    what ldd sees on a machine without those packages. (The sonames are made up: this machine has
    the real X11 libraries, and the dynamic linker would find those.)"""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for soname in ABSENT:
        (tmp_path / "stub.c").write_text("int tokenflow_stub(void) { return 0; }\n")
        subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(stubs / soname),
                        str(tmp_path / "stub.c")], check=True)
    (tmp_path / "plugin.c").write_text("extern int tokenflow_stub(void); int plugin(void) { return tokenflow_stub(); }\n")
    plugin = tmp_path / "libqxcb.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(plugin), str(tmp_path / "plugin.c"),
                    "-Wl,--no-as-needed", *(str(stubs / soname) for soname in ABSENT)],
                   check=True)
    shutil.rmtree(stubs)
    monkeypatch.setattr(qt_check, "platform_plugin", lambda name="xcb": plugin)
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    return plugin


def test_missing_libraries_are_read_from_the_dynamic_linker(plugin_missing_libraries):
    assert qt_check.missing_libraries(plugin_missing_libraries) == list(ABSENT)


def test_doctor_names_the_libraries_and_the_packages(plugin_missing_libraries):
    check = doctor.check_panel()
    assert check.status == doctor.WARN
    assert all(soname in check.detail for soname in ABSENT) and "cannot load" in check.detail
    assert "apt-get install" in check.advice and ABSENT[0] in check.advice


def test_the_advice_names_debian_packages():
    advice = qt_check.install_advice(["libxcb-cursor.so.0", "libxkbcommon-x11.so.0", "libxcb-icccm.so.4",
                                      "libxcb-keysyms.so.1"])
    assert "apt-get install libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 libxcb-keysyms1`" in advice


def test_the_real_plugin_here_has_its_libraries():
    """This machine has the packages docs/install.md lists, so the real plugin is complete."""
    plugin = qt_check.platform_plugin("xcb")
    assert plugin is not None and qt_check.missing_libraries(plugin) == []
