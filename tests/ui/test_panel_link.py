"""The panel's link against a real `tokenflow serve` (tiny model): one connection carries
everything the panel asks and follows, and each job's events reach that job."""

from __future__ import annotations

import time

from PySide6.QtCore import QThread

from bridge.editors.handoff import ClipRef, HandoffRequest, HandoffResult
from bridge.wire.client import Client
from cli.launch import tokenflow_command
from tests.e2e.conftest import serve  # noqa: F401  (this module's own server: the clients it counts are ours)

RANGES = [(0, 1), (20, 21), (40, 41), (60, 61), (80, 81)]


def test_a_handoff_of_several_clips_is_one_connection(qtbot, serve, shipped_clip, tmp_path):  # noqa: F811
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    lines: list[str] = []
    session = PanelSession(serve.endpoint, panel_dirs(tmp_path), launcher=tokenflow_command, result_sink=lines.append)
    with Client(serve.endpoint, timeout=20) as admin:
        admin.queue("pause")  # nothing runs until every clip is queued and followed
        try:
            session.start()
            qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
            session.load_handoff(HandoffRequest(
                clips=[ClipRef(media=str(shipped_clip), first=a, last=b, frame_rate="30000/1001") for a, b in RANGES],
                mode="submit", prompt="ink", seed=3, output_dir=str(serve.out),
                params={"steps": 2, "short_side": 64, "kf_interval": 4}))
            qtbot.waitUntil(lambda: admin.stats().subscriptions == len(RANGES), timeout=20000)
            # The panel is one client of the server (this test is the other), not one plus one per job.
            assert admin.stats().clients == 2
            threads = session.link.findChildren(QThread)
            assert len(threads) == 1 and threads[0].isRunning()

            admin.queue("resume")
            results: dict[int, HandoffResult] = {}

            def all_done() -> bool:
                for line in lines:
                    result = HandoffResult.from_line(line)
                    if result is not None and result.state == "done":
                        results[result.clip_index] = result
                return len(results) == len(RANGES)

            qtbot.waitUntil(all_done, timeout=240000)
            for index, (first, last) in enumerate(RANGES):
                job = results[index].job_id
                assert job is not None
                view = session.jobs.get(job)
                # Each job got its own frames (the source numbers of its own range) and its own end.
                assert view is not None and view.state == "done"
                assert sorted(view.full) == list(range(first, last + 1)), (index, sorted(view.full))
                version = session.history.get(job)
                assert version is not None and (version.first, version.last) == (first, last)
            assert len({r.job_id for r in results.values()}) == len(RANGES)

            # Fetching them all back at once (more than the 4 streams a connection may have open:
            # the link holds back the rest until one ends) over the same connection: each ends cleanly.
            ended: dict[str, str] = {}
            session.link.fetch_ended.connect(lambda job, error: ended.__setitem__(job, error))
            for result in results.values():
                assert result.job_id is not None
                session.link.fetch_frames(result.job_id)
            qtbot.waitUntil(lambda: len(ended) == len(RANGES), timeout=60000)
            assert set(ended.values()) == {""}, ended
        finally:
            started = time.monotonic()
            session.close()
            assert time.monotonic() - started < 3.0  # the one thread stops at once
    assert not threads[0].isRunning()


def test_closing_while_the_server_does_not_answer_is_prompt(qapp, tmp_path):
    """The link's thread is blocked waiting for a hello nobody answers, with jobs to follow: close
    terminates its context and it is gone at once."""
    import socket

    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    session = PanelSession(f"tcp://127.0.0.1:{port}", panel_dirs(tmp_path), launcher=tokenflow_command)
    session.start()
    session.link.watch("somejob", 1)
    [thread] = session.link.findChildren(QThread)
    time.sleep(0.5)  # into its hello (the outcome does not depend on it)
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < 2.0
    assert not thread.isRunning()


def test_a_restarted_server_is_followed_from_the_last_event_seen(qtbot, serve, shipped_clip, tmp_path):  # noqa: F811
    """kill -9 mid-job, start again: the link connects again and subscribes from the event after
    the last it delivered, so the job's end (and every frame) still reaches the panel once."""
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    lines: list[str] = []
    session = PanelSession(serve.endpoint, panel_dirs(tmp_path), launcher=tokenflow_command, result_sink=lines.append)
    try:
        session.start()
        qtbot.waitUntil(lambda: session.connection.connected, timeout=20000)
        session.load_handoff(HandoffRequest(
            clips=[ClipRef(media=str(shipped_clip), first=10, last=17, frame_rate="30000/1001")],
            mode="submit", prompt="ink", seed=3, output_dir=str(serve.out),
            params={"steps": 3, "short_side": 64, "kf_interval": 4}))
        qtbot.waitUntil(lambda: session.viewer.job is not None, timeout=20000)
        job = session.viewer.job
        assert job is not None

        def view():
            found = session.jobs.get(job)
            assert found is not None
            return found

        qtbot.waitUntil(lambda: view().last_seq >= 3, timeout=60000)  # it is running
        serve.kill9()
        qtbot.waitUntil(lambda: not session.connection.connected, timeout=30000)
        serve.start()

        def states() -> list[str]:
            return [r.state for r in map(HandoffResult.from_line, lines) if r is not None]

        # The result line comes of the job's own `done` event, the last of its stream (not of the list).
        qtbot.waitUntil(lambda: states()[-1:] == ["done"], timeout=240000)
        assert states() == ["queued", "done"]
        assert sorted(view().full) == list(range(10, 18))
    finally:
        session.close()
