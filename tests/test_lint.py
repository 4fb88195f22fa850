"""ruff and pyright (standard mode) over the repository, as configured in pyproject.toml.

Both come with the test extra; they run from the folder of the Python running the suite,
so a fresh `pip install -e ".[test]"` checks against the same environment the tests use.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    done = _run([str(BIN / "ruff"), "check", "--no-cache", "."])
    assert done.returncode == 0, f"ruff check found problems:\n{done.stdout}{done.stderr}"


def test_pyright_is_clean() -> None:
    # --pythonpath: resolve imports in this interpreter's environment, wherever the checkout's .venv is.
    done = _run([str(BIN / "pyright"), "--pythonpath", sys.executable])
    assert done.returncode == 0, f"pyright found problems:\n{done.stdout}{done.stderr}"
    assert "0 errors, 0 warnings" in done.stdout, f"pyright warned:\n{done.stdout}{done.stderr}"
