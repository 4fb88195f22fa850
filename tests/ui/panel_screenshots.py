"""Screenshots of the panel's main states, from a real window on a real X server (Xvfb).

Run by hand (docs/panel.md says how); it starts a real `tokenflow serve` with the tiny
random model, drives the real panel, and grabs the X screen:

    xvfb-run -s "-screen 0 1600x1000x24" python tests/ui/panel_screenshots.py docs/img

`--only-window OUT.png` just opens the window on the clip and grabs it (what the Xvfb
test runs). The tiny model is random: its "edits" are noise, by design.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

CLIP = REPO / "media" / "carphone_pristine.mp4"


def wait(app, condition, timeout: float = 300.0, status=None) -> None:
    deadline = time.monotonic() + timeout
    shown = 0.0
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the panel did not get there in time")
        if status is not None and time.monotonic() - shown > 5:
            shown = time.monotonic()
            print(status(), flush=True)
        app.processEvents()
        time.sleep(0.02)


def settle(app, seconds: float = 0.4) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def grab(app, window, path: Path) -> None:
    """The window as the X server shows it (not a widget render): what a user sees."""
    settle(app)
    screen = window.screen()
    pixmap = screen.grabWindow(0, window.x(), window.y(), window.frameGeometry().width(),
                               window.frameGeometry().height())
    path.parent.mkdir(parents=True, exist_ok=True)
    if not pixmap.save(str(path)):
        raise RuntimeError(f"could not save {path}")
    print(f"saved {path}", flush=True)


def make_window(endpoint: str, data: Path, out: Path | None):
    from PySide6.QtWidgets import QApplication

    from cli.launch import tokenflow_command
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.main_window import MainWindow
    from ui.widgets.theme import apply_theme

    app = QApplication.instance() or QApplication(["tokenflow-panel"])
    apply_theme(app)
    session = PanelSession(endpoint, panel_dirs(data), launcher=tokenflow_command, output_dir=str(out) if out else None,
                           result_sink=lambda line: None)
    window = MainWindow(session)
    window.resize(1440, 880)
    window.move(0, 0)
    window.show()
    session.start()
    return app, session, window


def only_window(path: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app, session, window = make_window("tcp://127.0.0.1:9", Path(tmp), None)
        session.open_clip(CLIP)
        wait(app, lambda: session.thumbs.ready, 30)
        grab(app, window, path)
        window.close()


def matte_overlay(path: Path) -> None:
    """The window with a matte loaded: an ellipse around the driver, drawn as a PNG sequence."""
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        mattes = Path(tmp) / "mattes"
        mattes.mkdir()
        y, x = np.mgrid[0:144, 0:176]
        for n in range(120):
            inside = ((x - 80 - n / 12) / 42) ** 2 + ((y - 70) / 56) ** 2 <= 1
            Image.fromarray((inside * 255).astype(np.uint8), "L").save(mattes / f"driver.{n:04d}.png")
        app, session, window = make_window("tcp://127.0.0.1:9", Path(tmp), None)
        session.open_clip(CLIP)
        wait(app, lambda: session.thumbs.ready, 30)
        session.clip.seek(40)
        session.matte.set(str(mattes / "driver.%04d.png"), False, 6.0)
        grab(app, window, path)
        window.close()


VARIANT_PROMPTS = ("a watercolor painting of a man in a car", "an oil painting", "a pencil sketch")


def variants_view(app, session, window, path: Path) -> None:
    """A three-prompt job, tiled in the Variants view once it is done."""
    session.clip.set_marks(24, 31)
    panel = window.edit_panel
    panel.advanced_toggle.setChecked(True)
    panel.steps.setValue(20)
    panel.short_side.setValue(128)
    panel.kf_interval.setValue(4)
    panel.prompt.setPlainText(VARIANT_PROMPTS[0])
    for prompt in VARIANT_PROMPTS[1:]:
        panel.add_variant(prompt)
    before = set(session.jobs.jobs)
    window.actions_by_name["submit"].trigger()
    wait(app, lambda: session.viewer.job is not None and session.viewer.job not in before)
    job = session.viewer.job
    wait(app, lambda: session.jobs.get(job).terminal, 600, status=lambda: session.jobs.get(job).status_text)
    from PySide6.QtCore import Qt

    panel.advanced_toggle.setChecked(False)  # room for the history's entries, one per prompt
    window.resizeDocks([window.docks["edit"], window.docks["history"]], [560, 400], Qt.Orientation.Vertical)
    session.clip.seek(28)
    session.viewer.set_mode("variants")
    session.viewer.set_variant(1)
    grab(app, window, path)
    while panel.variant_edits:  # the screenshots after this one are of one-prompt jobs
        panel.remove_variant(0)


def only_variants(path: Path) -> None:
    from tests.e2e.conftest import ServeProcess
    from tokenflow.tiny import make_tiny_pipeline_dir

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        server = ServeProcess(tmp / "serve", make_tiny_pipeline_dir(tmp / "tiny")).start()
        try:
            app, session, window = make_window(server.endpoint, tmp / "panel", server.out)
            wait(app, lambda: session.connection.connected, 60)
            session.open_clip(CLIP)
            wait(app, lambda: session.thumbs.ready, 30)
            variants_view(app, session, window, path)
            window.close()
        finally:
            server.stop()


def all_states(folder: Path) -> None:
    from PySide6.QtCore import Qt

    from tests.e2e.conftest import ServeProcess
    from tokenflow.tiny import make_tiny_pipeline_dir

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = make_tiny_pipeline_dir(tmp / "tiny")
        server = ServeProcess(tmp / "serve", model).start()
        try:
            app, session, window = make_window(server.endpoint, tmp / "panel", server.out)
            wait(app, lambda: session.connection.connected, 60)
            grab(app, window, folder / "panel-empty.png")

            session.open_clip(CLIP)
            wait(app, lambda: session.thumbs.ready, 30)
            session.clip.seek(24)
            session.clip.set_in()
            session.clip.seek(55)
            session.clip.set_out()
            session.clip.seek(40)
            panel = window.edit_panel
            panel.prompt.setPlainText("a watercolor painting of a man in a car")
            panel.advanced_toggle.setChecked(True)
            panel.steps.setValue(60)
            panel.short_side.setValue(128)
            panel.kf_interval.setValue(4)
            window.actions_by_name["submit"].trigger()
            wait(app, lambda: session.viewer.job is not None)
            job = session.viewer.job
            wait(app, lambda: len(session.jobs.get(job).previews) >= 2 and
                 (session.jobs.get(job).progress or {}).get("stage") == "edit",
                 status=lambda: session.jobs.get(job).status_text)
            grab(app, window, folder / "panel-editing.png")

            wait(app, lambda: session.jobs.get(job).state == "done", 600)
            session.viewer.set_mode("wipe")
            session.viewer.set_wipe(0.55)
            session.clip.seek(45)
            grab(app, window, folder / "panel-wipe.png")
            session.viewer.set_mode("side")
            grab(app, window, folder / "panel-side-by-side.png")
            variants_view(app, session, window, folder / "panel-variants.png")

            # A queue: one running, two waiting, one cancelled; the done version stays on screen.
            done_job = job
            panel.steps.setValue(200)
            for first, prompt in ((0, "an oil painting"), (48, "a pencil sketch"), (80, "neon cyberpunk city"),
                                  (100, "a claymation still")):
                session.clip.set_marks(first, first + 15)
                panel.prompt.setPlainText(prompt)
                window.actions_by_name["submit"].trigger()
                settle(app, 1.5)
            wait(app, lambda: any(j.state == "running" and j.progress for j in session.jobs.jobs.values()))
            queued = session.jobs.queue_order()
            session.cancel(queued[-1])
            wait(app, lambda: session.jobs.get(queued[-1]).state == "cancelled")
            settle(app, 3)  # a progress event or two
            window.docks["queue"].raise_()
            window.resizeDocks([window.docks["queue"]], [260], Qt.Orientation.Vertical)
            window.queue_view.select(queued[0])
            session.reload(done_job)
            session.viewer.set_mode("result")
            session.clip.seek(40)
            grab(app, window, folder / "panel-queue.png")
            for j in list(session.jobs.jobs.values()):
                if not j.terminal:
                    session.cancel(j.id)
            settle(app, 2)
            window.close()
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", nargs="?", type=Path, default=REPO / "docs" / "img")
    parser.add_argument("--only-window", type=Path, metavar="OUT.png")
    parser.add_argument("--matte", type=Path, metavar="OUT.png", help="only the matte overlay's screenshot")
    parser.add_argument("--variants", type=Path, metavar="OUT.png", help="only the Variants view's screenshot")
    args = parser.parse_args()
    if args.variants:
        only_variants(args.variants)
    elif args.matte:
        matte_overlay(args.matte)
    elif args.only_window:
        only_window(args.only_window)
    else:
        all_states(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
