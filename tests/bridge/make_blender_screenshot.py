"""Makes docs/images/blender_vse.png: the add-on run in real Blender, then Blender's window photographed.

    apt-get install -y blender xvfb xauth
    python tests/bridge/make_blender_screenshot.py docs/images/blender_vse.png

A real `tokenflow serve` with the tiny random model (so the edited frames are noise), the
add-on installed into a temporary home, the scenario of test_blender.py with a longer
strip, then Blender's window under Xvfb.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bridge.installers import InstallContext  # noqa: E402
from bridge.installers import blender as blender_target  # noqa: E402
from cli.launch import tokenflow_command  # noqa: E402
from tests.e2e.conftest import ServeProcess  # noqa: E402
from tokenflow.tiny import make_tiny_pipeline_dir  # noqa: E402


def main(out: Path) -> None:
    version = subprocess.run(["blender", "-b", "--factory-startup", "--python-expr",
                              "import bpy; print('VERSION', *bpy.app.version[:2])"],
                             capture_output=True, text=True).stdout
    version = ".".join(next(line for line in version.splitlines() if line.startswith("VERSION")).split()[1:])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        serve = ServeProcess(root / "serve", make_tiny_pipeline_dir(root / "model")).start()
        try:
            home = root / "home"
            (home / ".config/blender" / version).mkdir(parents=True)
            blender_target.install(InstallContext(launcher=tokenflow_command, python=Path(sys.executable), home=home, system="Linux"))
            footage = serve.out / "footage" / "carphone.mp4"
            footage.parent.mkdir()
            shutil.copy(REPO / "media" / "carphone_pristine.mp4", footage)
            saved = root / "placed.blend"
            env = {**os.environ, "HOME": str(home), "TF_FOOTAGE": str(footage), "TF_PRESET": "png",
                   "TF_TRIM": "20,64", "TOKENFLOW_SERVER": serve.endpoint, "PYTHONPATH": "", "TF_SAVE": str(saved)}
            subprocess.run(["blender", "-b", "--factory-startup", "--python-exit-code", "1", "--python",
                            str(REPO / "tests/bridge/blender_scenario.py")], env=env, check=True, cwd=root)
        finally:
            serve.stop()
        env = {**os.environ, "HOME": str(home), "TF_SHOT": str(out.absolute()),
               "TF_SHOT_DIALOG": str(out.with_name(out.stem + "_dialog" + out.suffix).absolute())}
        subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1600x900x24", "blender", str(saved), "--python",
                        str(REPO / "tests/bridge/blender_shot_gui.py")], env=env, check=True, cwd=root)
    print(f"Wrote {out} and {out.stem}_dialog{out.suffix}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "blender_vse.png"))
