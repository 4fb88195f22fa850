"""Whether the panel's Qt platform plugin can load on this machine, and what to install if not.

PySide6's wheels carry Qt but not the X11/XCB system libraries its `xcb` platform plugin links
against. On a desktop-less Debian the first `tokenflow panel` would abort with "could not load
the Qt platform plugin xcb" and a core dump; `tokenflow doctor` says beforehand which libraries
are missing (from the dynamic linker's own view, `ldd`) and which packages hold them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# soname -> Debian/Ubuntu package. Fedora and Arch names are in docs/install.md.
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.M)


def platform_plugin(name: str = "xcb") -> Path | None:
    """The Qt platform plugin file the panel would load (None where PySide6 is missing)."""
    try:
        import PySide6
    except ImportError:
        return None
    plugin = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / f"libq{name}.so"
    return plugin if plugin.exists() else None


def missing_libraries(binary: Path) -> list[str]:
    """The shared libraries `binary` needs that the dynamic linker cannot find (sonames, sorted)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return []
    run = subprocess.run([ldd, str(binary)], capture_output=True, text=True, timeout=30)
    return sorted(set(_NOT_FOUND.findall(run.stdout)))


def install_advice(sonames: list[str]) -> str:
    packages = [DEBIAN_PACKAGES.get(name, name) for name in sonames]
    return (f"Debian/Ubuntu: `sudo apt-get install {' '.join(packages)}`; other systems: install the packages "
            "that hold " + ", ".join(sonames) + " (docs/install.md lists them for Fedora and Arch).")


def load_problem(platform: str, timeout: float = 20.0) -> str | None:
    """Start Qt with `platform` in a child process (a failing plugin aborts the process it is in);
    None when it starts, else the last lines Qt said."""
    code = "from PySide6.QtGui import QGuiApplication; app = QGuiApplication(['tokenflow-doctor'])"
    env = {**os.environ, "QT_QPA_PLATFORM": platform}
    try:
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"Qt did not start within {timeout:.0f} s"
    if run.returncode == 0:
        return None
    said = [line for line in run.stderr.strip().splitlines() if line.strip()]
    return " ".join(said[-2:]) or f"Qt exited with status {run.returncode}"
