"""Without `--cluster` the server never imports Ray (an optional extra): a local server that
ran a job, and the CLI's parser with every subcommand, leave `ray` out of sys.modules."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_local_server_running_a_job_never_imports_ray(tmp_path, shipped_clip):
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from bridge.wire import protocol as p
        from bridge.wire.client import Client
        from cli.main import build_parser
        from server.app import Server
        from server.config import ServerConfig
        from server.paths import DataDir
        from tests.server.fake_engine import FakeEngine

        build_parser()  # every subcommand registered, `cluster` and `serve --cluster` included
        root = Path({str(tmp_path)!r})
        config = ServerConfig(data=DataDir(root / "data"), models=("fake",), bind=f"ipc://{{root}}/s.sock",
                              allowed_output_dirs=(root,))
        server = Server(config, engine_factory=lambda model: FakeEngine(step_s=0))
        c = Client(server.start_in_thread(), timeout=30)
        c.connect()
        spec = p.JobSpec(input={str(shipped_clip)!r}, params={{"prompt": "x", "steps": 2}}, frames="0:3",
                         output=str(root / "out.mp4"))
        assert c.wait(c.submit(spec).job).kind == "done"
        c.close()
        server.stop()
        print("ray imported:", "ray" in sys.modules)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ray imported: False" in out.stdout
