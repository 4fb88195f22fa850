"""The files `tokenflow install` writes, kept as templates in the source tree's `packaging/`.

A checkout (or an editable install) reads them from `packaging/` beside the packages. A
wheel ships the same files as data files (pyproject: `[tool.setuptools.data-files]`),
which pip puts under `<prefix>/share/tokenflow/` of the environment (or of the user
scheme for `pip install --user`). `packaging/` is not a Python package on purpose: the
name belongs to the PyPI `packaging` library.
"""

from __future__ import annotations

import string
import sysconfig
from collections.abc import Iterable
from pathlib import Path

from bridge.installers import OWNED_MARK, InstallError

SHARE_SUBDIR = Path("share") / "tokenflow"


def _candidate_roots() -> Iterable[Path]:
    yield Path(__file__).resolve().parents[2] / "packaging"  # a checkout or an editable install
    yield Path(sysconfig.get_path("data")) / SHARE_SUBDIR  # a wheel installed into this environment
    yield Path(sysconfig.get_path("data", sysconfig.get_preferred_scheme("user"))) / SHARE_SUBDIR  # pip --user


def template_path(relative: str) -> Path:
    """Where `packaging/<relative>` is on this machine (checkout first, then the installed data files)."""
    tried = []
    for root in _candidate_roots():
        path = root / relative
        if path.is_file():
            return path
        tried.append(str(path))
    raise InstallError(f"The installer template {relative} is missing (looked in {', '.join(tried)}); "
                       "reinstall tokenflow-editor with pip.")


def render(relative: str, **values: str) -> str:
    """The template with `${name}` filled in; `${mark}` is always the ownership mark."""
    text = template_path(relative).read_text(encoding="utf-8")
    try:
        return string.Template(text).substitute(mark=OWNED_MARK, **values)
    except (KeyError, ValueError) as exc:
        raise InstallError(f"The installer template {relative} is damaged ({exc}); reinstall tokenflow-editor.") from exc
