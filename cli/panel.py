"""`tokenflow panel`: the desktop panel (PySide6), a client of a running `tokenflow serve`."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from cli.options import connection_options, curve_keys

EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    connection = connection_options(timeout=None)
    parser = subparsers.add_parser(
        "panel", parents=[connection], help="open the TokenFlow panel (pick a clip, mark in/out, prompt, watch, compare, export)",
        description="The desktop panel: a client of a TokenFlow server (it offers to start one when none "
        "answers). Keys: I/O mark, J/K/L and Space play, 1-4 compare, Ctrl+Enter submits. See docs/panel.md.",
    )
    parser.add_argument("clip", nargs="?", help="a video file to open")
    parser.add_argument("--handoff", metavar="FILE|-",
                        help="an editor launcher's request (JSON, bridge/editors/handoff.py), from a file or stdin; "
                        "results are printed on stdout as TOKENFLOW-RESULT lines")
    parser.add_argument("--output-dir", type=Path,
                        help="where the server writes results (default: the server's outputs folder; "
                        "for a handoff: the request's output_dir, else beside the source)")
    parser.add_argument("--data-dir", type=Path,
                        help="the panel's history and presets (default: $TOKENFLOW_PANEL_DIR or the user folders)")
    parser.add_argument("--start-server", action="store_true",
                        help="when no server answers, start a local one (as Server > Start a local server does); "
                        "it stops when the panel closes")
    parser.set_defaults(func=run)


def _err(message: str) -> int:
    print(f"tokenflow panel: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    from bridge.editors.handoff import HandoffError
    from bridge.wire.client import ClientError, default_endpoint

    request = None
    if args.handoff:
        from ui.handoff_io import read_request

        try:
            request = read_request(args.handoff)
        except HandoffError as exc:
            return _err(f"the handoff request is not usable: {exc}")
    try:
        keys = curve_keys(args)
    except (OSError, ClientError) as exc:
        return _err(str(exc))
    if args.clip and not Path(args.clip).is_file():
        return _err(f"{args.clip} is not a file: give the path of a video file.")

    try:
        from PySide6.QtWidgets import QApplication
    except ImportError as exc:
        return _err(f"Qt for Python (PySide6) is not installed ({exc}): pip install PySide6-Essentials.")
    from cli.launch import tokenflow_command
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs
    from ui.widgets.main_window import MainWindow
    from ui.widgets.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication), "a Qt application made here or by the tests, always a QApplication"
    app.setApplicationName("TokenFlow")
    app.setOrganizationName("tokenflow")
    apply_theme(app)
    session = PanelSession(args.server or default_endpoint(), panel_dirs(args.data_dir), launcher=tokenflow_command, keys=keys,
                           output_dir=str(args.output_dir.expanduser().absolute()) if args.output_dir else None)
    window = MainWindow(session)
    window.show()
    session.start()
    if request is not None:
        session.load_handoff(request)
    elif args.clip:
        session.open_clip(args.clip)
    if args.start_server:
        _start_server_when_none_answers(session)
    _quit_on_termination(app)
    try:
        return app.exec()
    finally:
        # However the loop ended (Ctrl+Q, the window closed, SIGTERM from a logout or `kill`),
        # the server this panel started goes with it; close() is idempotent.
        session.close()


def _start_server_when_none_answers(session) -> None:
    """--start-server: what the user would do by hand (Server > Start a local server), once."""
    from ui.model.connection import LinkState

    started = False

    def check() -> None:
        nonlocal started
        if not started and session.connection.state is LinkState.UNREACHABLE:
            started = True
            session.start_local_server()

    session.connection.changed.connect(check)


def _quit_on_termination(app) -> None:
    """SIGTERM and SIGHUP end the panel as Ctrl+Q does, not by killing the process outright.

    Python runs signal handlers only between bytecodes, and Qt's event loop is C++: a short
    timer hands the interpreter control often enough for the handler to run promptly.
    """
    from PySide6.QtCore import QTimer

    for number in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if number is not None:
            signal.signal(number, lambda *_: app.quit())
    timer = QTimer(app)
    timer.timeout.connect(lambda: None)
    timer.start(200)
