"""The README's first command, as a new user runs it: it must leave a `tokenflow doctor` that
finds a usable model (issue 20, item 8: the demo built the tiny model without registering it)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import REPO


def _demo_commands() -> list[list[str]]:
    """The `tokenflow` commands of the README's "Try it" block, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Try it.*?```bash\n(.*?)```", text, re.S)
    assert block, "the README has no 'Try it' command block"
    commands = [shlex.split(part) for part in block.group(1).strip().split("&&")]
    return [c[1:] for c in commands if c and c[0].endswith("bin/tokenflow")]


def test_the_readme_demo_leaves_doctor_with_a_usable_model(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENFLOW_CONFIG_DIR": str(tmp_path / "config"),
           "TOKENFLOW_DATA_DIR": str(tmp_path / "data"), "TOKENFLOW_CACHE_DIR": str(tmp_path / "cache"),
           "HF_HUB_CACHE": str(tmp_path / "hub"), "TOKENFLOW_SERVER": f"ipc://{tmp_path}/none.sock"}
    commands = _demo_commands()
    make, edit = commands[0], commands[-1]
    assert make[:2] == ["models", "make-tiny"] and edit[0] == "edit"
    # Build the model as the README does (in a scratch folder; the edit itself is the e2e suite's job).
    make = [str(tmp_path / "tiny") if arg == ".tiny-model" else arg for arg in make]
    built = subprocess.run([sys.executable, "-m", "cli", *make], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=300)
    assert built.returncode == 0, built.stderr
    model = edit[edit.index("--model") + 1]
    doctor = subprocess.run([sys.executable, "-m", "cli", "doctor", "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    checks = {c["area"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["models"]["status"] != "fail", checks["models"]
    usable = [m["id"] for m in checks["models"]["data"]["models"] if m.get("supported")]
    assert model in usable or Path(model).exists(), (model, usable)
