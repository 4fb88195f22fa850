"""The `tokenflow` command as a process: how it ends when its reader goes away."""

from __future__ import annotations

import subprocess
import sys

from tests.e2e.conftest import REPO


def test_a_reader_that_goes_away_is_not_an_error(shipped_clip):
    """`tokenflow probe CLIP | head -1`: the reader closes the pipe first; no traceback, SIGPIPE's status."""
    proc = subprocess.Popen([sys.executable, "-m", "cli", "probe", str(shipped_clip)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before the command writes its first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
