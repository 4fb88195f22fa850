"""The panel's model layer without any widget: marks, playback, jobs, history, presets, handoff."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from bridge.editors.handoff import ClipRef, HandoffError, HandoffRequest, HandoffResult
from bridge.wire import protocol as p
from bridge.wire.client import EventKind, JobEvent
from cli.launch import tokenflow_command


@pytest.fixture
def clip_model(qapp, shipped_clip):
    from ui.model.clip import ClipModel

    model = ClipModel()
    assert model.open(shipped_clip) is not None
    return model


def test_marks_behave_like_an_editors(clip_model):
    m = clip_model
    assert m.range == (0, 119)  # no marks: the whole clip
    m.seek(30)
    m.set_in()
    m.seek(40)
    m.set_out()
    assert m.range == (30, 40)
    m.seek(50)
    m.set_in()  # an in after the out drops the out
    assert (m.mark_in, m.mark_out, m.range) == (50, None, (50, 119))
    m.seek(10)
    m.set_out()  # an out before the in drops the in
    assert (m.mark_in, m.mark_out, m.range) == (None, 10, (0, 10))
    assert m.seek(500) == 119 and m.seek(-3) == 0
    assert m.timecode(0) == "00:00:00:00" and m.timecode(31) == "00:00:01:01"  # 29.97 non-drop: 30 per second


def test_unreadable_clip_says_what_to_do(qapp, tmp_path):
    from ui.model.clip import ClipModel

    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    model, errors = ClipModel(), []
    model.error.connect(errors.append)
    assert model.open(bad) is None and model.current is None
    assert len(errors) == 1 and "pick a video file" in errors[0]


def test_playback_follows_the_clips_rate_and_jkl(qtbot, clip_model):
    from ui.model.playback import PlaybackModel

    play = PlaybackModel(clip_model)
    play.forward()
    assert play.speed == 1
    play.forward()
    assert play.speed == 2  # L again: faster
    play.backward()
    assert play.speed == -1  # J reverses at normal speed
    play.stop()
    assert not play.playing
    clip_model.seek(0)
    started = time.monotonic()
    play.toggle()
    qtbot.waitUntil(lambda: clip_model.position >= 15, timeout=5000)
    took = time.monotonic() - started
    play.toggle()
    # 15 frames at 29.97 fps is half a second; a timer-driven player that ignored the
    # clock (or the rate) would be far off either way.
    assert 0.4 < took < 2.0, took
    # Playback stops at the out mark.
    clip_model.set_marks(0, 5)
    clip_model.seek(0)
    play.forward()
    qtbot.waitUntil(lambda: not play.playing, timeout=3000)
    assert clip_model.position == 5


def test_source_frames_are_decoded_exactly_and_cached(clip_model):
    from bridge import media
    from ui.images import rgb_to_qimage
    from ui.model.frames import SourceFrames

    frames = SourceFrames(clip_model)
    expected = [rgb_to_qimage(f) for f in media.read_frames(clip_model.current.path, 40, 42)]
    got = [frames.image(40), frames.image(41), frames.image(42)]  # in order: one generator
    assert [g == e for g, e in zip(got, expected)] == [True, True, True]
    assert frames.image(41) is got[1]  # a second look comes from the cache
    assert frames.image(10) == rgb_to_qimage(next(media.read_frames(clip_model.current.path, 10, 10)))


def _event(kind: EventKind, seq: int, body, job: str = "j1") -> JobEvent:
    return JobEvent(kind, job, seq, body)


def test_jobs_model_orders_the_queue_and_picks_the_best_picture(qapp):
    from PySide6.QtGui import QImage

    from ui.model.jobs import JobsModel

    jobs = JobsModel()

    def info(job, state, position=None, created=0.0):
        return p.JobInfo(id=job, state=state, created=created, updated=created, input="/c.mp4", prompt=job,
                         frames="10:17", output=None, priority=0, position=position, last_seq=1, attempts=1,
                         outputs=[], error=None, progress=None)

    jobs.apply_list([info("old", "done", created=1), info("b", "queued", 1, 3), info("a", "queued", 0, 4),
                     info("r", "running", created=2), info("new", "failed", created=5)])
    assert [j.id for j in jobs.ordered()] == ["r", "a", "b", "new", "old"]
    assert jobs.queue_order() == ["a", "b"]

    preview, proxy, full = (QImage(4, 4, QImage.Format.Format_RGB888) for _ in range(3))
    arrived = []
    jobs.image_arrived.connect(lambda job, kind, frame: arrived.append((kind, frame)))
    jobs.apply_event(_event(EventKind.PROGRESS, 2, p.Progress(stage="edit", step=1, total=4, frames_total=8),
                            "r"), None)
    jobs.apply_event(_event(EventKind.PROXY, 3, p.Proxy(kind="preview", frame=10, step=1), "r"), preview)
    view = jobs.get("r")
    assert view.best_image(16) == (preview, "preview")  # nearest keyframe preview stands in
    jobs.apply_event(_event(EventKind.PROXY, 4, p.Proxy(kind="frame", frame=16), "r"), proxy)
    assert view.best_image(16) == (proxy, "proxy")
    jobs.apply_event(_event(EventKind.FRAME, 5, p.Frame(frame=16, shape=[4, 4, 3]), "r"), full)
    assert view.best_image(16) == (full, "frame")
    assert view.status_text.startswith("Editing 2/4")  # one step done: the second is being worked on
    jobs.apply_event(_event(EventKind.PROGRESS, 6, p.Progress(stage="edit", step=4, total=4, frames_total=8),
                            "r"), None)
    assert view.status_text.startswith("Editing 4/4")  # all done reads total/total, never 5/4
    finished = []
    jobs.finished.connect(lambda job, state: finished.append((job, state)))
    jobs.apply_event(_event(EventKind.DONE, 7, p.Done(outputs=["/o.mp4"], frames=8), "r"), None)
    assert finished == [("r", "done")] and arrived == [("preview", 10), ("proxy", 16), ("frame", 16)]
    # A list that is older than the events never un-finishes a job.
    jobs.apply_list([info("r", "running", created=2)])
    assert jobs.get("r").state == "done"
    jobs.hide("old")
    assert "old" not in [j.id for j in jobs.ordered()]


def test_history_survives_a_restart_and_reconciles(qapp, tmp_path):
    from ui.model.history import HistoryModel, HistoryStore, Version

    path = tmp_path / "history.sqlite"
    history = HistoryModel(HistoryStore(path))
    history.record(Version("j1", "/clips/a.mp4", 10, 17, "ink", {"prompt": "ink", "seed": 3, "steps": 20},
                           None, "tcp://x", "queued", created=1.0))
    history.record(Version("j2", "/clips/a.mp4", 0, 7, "oil", {"prompt": "oil"}, None, "tcp://x", "running",
                           created=2.0))
    history.set_thumbnail("j1", b"\x89PNG fake")
    history.store.close()

    again = HistoryModel(HistoryStore(path))
    versions = again.versions("/clips/a.mp4")
    assert [v.job_id for v in versions] == ["j2", "j1"]  # newest first
    assert versions[1].thumbnail == b"\x89PNG fake" and versions[1].params["seed"] == 3
    assert "frames 10-17" in versions[1].summary
    done = p.JobInfo(id="j1", state="done", created=1, updated=5, input="/clips/a.mp4", prompt="ink", frames="10:17",
                     output="/o.mp4", priority=0, position=None, last_seq=20, attempts=1, outputs=["/o.mp4"],
                     error=None, progress=None)
    missing = again.reconcile([done])
    assert missing == ["j2"]
    assert again.get("j1").state == "done" and again.get("j1").outputs == ["/o.mp4"]
    again.store.close()
    rows = sqlite3.connect(path).execute("SELECT job_id, state FROM versions ORDER BY job_id").fetchall()
    assert rows == [("j1", "done"), ("j2", "running")]


def test_presets_round_trip_and_a_broken_file_is_left_alone(qapp, tmp_path):
    from ui.model.presets import EditForm, PresetStore

    path = tmp_path / "cfg" / "prompt_presets.json"
    store = PresetStore(path)
    form = EditForm(prompt="a watercolor painting", seed=7, steps=30)
    store.save("Watercolor", form)
    assert PresetStore(path).presets == {"Watercolor": form}
    assert form.params()["preview_every"] == 3
    assert EditForm(prompt=" ").problem().startswith("The prompt is empty")
    path.write_text("{not json")
    broken = PresetStore(path)
    assert broken.presets == {} and str(path) in broken.problem
    assert path.read_text() == "{not json"  # the user's file is not overwritten by loading


def test_handoff_request_read_from_an_open_pipe(tmp_path):
    """A launcher writes its request and keeps stdin open for its own reasons: the panel must not wait for EOF."""
    import os

    from ui.handoff_io import read_request

    request = HandoffRequest(clips=[ClipRef(media="/c.mp4", first=3, last=9, frame_rate="25")], prompt="ink")
    read_fd, write_fd = os.pipe()
    os.write(write_fd, (request.to_json() + "\n").encode())
    got = {}
    reader = threading.Thread(target=lambda: got.setdefault("r", read_request("-", os.fdopen(read_fd))))
    reader.start()
    reader.join(5)
    assert got.get("r") == request  # read while the write end is still open
    os.close(write_fd)
    path = tmp_path / "req.json"
    path.write_text(json.dumps({"clips": [], "mode": "panel"}))
    with pytest.raises(HandoffError, match="clips"):
        read_request(str(path))
    with pytest.raises(HandoffError, match="nothing arrived"):
        read_request("-", io.StringIO(""))


def test_session_reports_handoff_results_on_its_sink(qapp, tmp_path, shipped_clip):
    """The launcher's side of the contract: a done job for a handed-over clip is one parseable result line."""
    from tests.ui.fake_link import FakeLink
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    lines: list[str] = []
    link = FakeLink()
    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command,
                           result_sink=lines.append, link=link)
    try:
        session.start()  # the fake answers at once: connected
        request = HandoffRequest(clips=[ClipRef(media=str(shipped_clip), first=4, last=11, frame_rate="30000/1001")],
                                 prompt="ink", seed=5, mode="submit")
        session.load_handoff(request)
        assert session.clip.range == (4, 11) and session.last_form.prompt == "ink" and session.last_form.seed == 5
        [(token, spec)] = link.submits  # mode "submit": queued as soon as a server answers
        assert (spec.frames, spec.params["prompt"], spec.params["seed"]) == ("4:11", "ink", 5)
        link.submitted.emit(token, _event(EventKind.ACCEPTED, 1, p.Accepted(position=0), "job1"))
        assert link.watches == {"job1": 2}  # followed from the event after `accepted`
        link.job_event.emit(_event(EventKind.DONE, 9, p.Done(outputs=["/out/x.mp4"], frames=8, first_frame=4),
                                   "job1"), None)
        results = [HandoffResult.from_line(line) for line in lines]
        assert [r.state for r in results] == ["queued", "done"]
        assert results[1] == HandoffResult(clip_index=0, state="done", job_id="job1", output="/out/x.mp4",
                                           prompt="ink", seed=5)
        assert session.history.get("job1").state == "done"
    finally:
        session.close()


def test_a_handed_over_clip_with_several_looks_is_one_job_and_one_result_line_per_look(qapp, tmp_path, shipped_clip):
    """An editor asked for two looks in "submit" mode: one job with `params.variants`, named without a
    prompt (the server adds each prompt's), and a queued and a done line for each look."""
    from tests.ui.fake_link import FakeLink
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    lines: list[str] = []
    link = FakeLink()
    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command,
                           result_sink=lines.append, link=link)
    try:
        session.start()
        request = HandoffRequest(clips=[ClipRef(media=str(shipped_clip), first=4, last=11, frame_rate="30000/1001")],
                                 prompt="ink", variants=["snow"], seed=5, mode="submit", output_dir=str(tmp_path))
        session.load_handoff(request)
        assert session.last_form.variants == ("snow",)  # the form shows both looks
        [(token, spec)] = link.submits
        assert (spec.params["prompt"], spec.params["variants"]) == ("ink", ["snow"])
        assert "ink" not in Path(spec.output).name  # a base name: each prompt's own name adds its prompt
        link.submitted.emit(token, _event(EventKind.ACCEPTED, 1, p.Accepted(position=0), "job1"))
        outputs = [["/out/x_ink.mp4"], ["/out/x_snow.mp4"]]
        link.job_event.emit(_event(EventKind.DONE, 9, p.Done(
            outputs=[o for each in outputs for o in each], frames=8, first_frame=4,
            variants=[p.VariantOutputs(prompt=pr, outputs=o) for pr, o in zip(("ink", "snow"), outputs)]),
            "job1"), None)
        results = [HandoffResult.from_line(line) for line in lines]
        assert [(r.state, r.variant, r.prompt) for r in results] == [
            ("queued", 0, "ink"), ("queued", 1, "snow"), ("done", 0, "ink"), ("done", 1, "snow")]
        assert [r.output for r in results if r.state == "done"] == ["/out/x_ink.mp4", "/out/x_snow.mp4"]
    finally:
        session.close()


def test_a_handed_over_clip_that_cannot_be_read_is_answered(qapp, tmp_path, shipped_clip):
    from ui.model.session import PanelSession
    from ui.paths import panel_dirs

    lines: list[str] = []
    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command, result_sink=lines.append)
    try:
        missing = tmp_path / "gone.mov"
        session.load_handoff(HandoffRequest(clips=[
            ClipRef(media=str(missing), first=0, last=9, frame_rate="25"),
            ClipRef(media=str(shipped_clip), first=30, last=39, frame_rate="30000/1001")]))
        results = [HandoffResult.from_line(line) for line in lines]
        assert [(r.clip_index, r.state) for r in results] == [(0, "failed")]
        assert str(missing) in results[0].message
        assert session.clip.current.handoff_index == 1 and session.clip.range == (30, 39)
    finally:
        session.close()


def test_stopping_a_network_thread_never_hangs():
    """The panel stops its threads by terminating their ZeroMQ context: a Client blocked in a
    call must get out and close, or the window would hang on close."""
    import zmq

    from bridge.wire.client import Client

    context = zmq.Context()
    client = Client("tcp://127.0.0.1:9", timeout=30, context=context)  # nobody answers there
    outcome = []

    def blocked():
        try:
            client.connect()
        except zmq.ZMQError as exc:
            outcome.append(exc.errno == zmq.ETERM)
        finally:
            client.close()

    worker = threading.Thread(target=blocked, daemon=True)
    worker.start()
    time.sleep(0.5)  # let it block in the hello (not a synchronisation: the outcome does not depend on it)
    closer = threading.Thread(target=context.term, daemon=True)
    closer.start()
    closer.join(10)
    assert not closer.is_alive(), "terminating the context hung: a socket was left open"
    assert outcome == [True]


def test_a_square_preview_is_drawn_at_the_clips_aspect(qapp, tmp_path, shipped_clip):
    """Previews come at the working size (176x144 works at 128x128); the viewer shows them as the frames they become."""
    from PySide6.QtGui import QColor, QImage

    from ui.model.session import PanelSession
    from ui.model.viewer import CompareMode
    from ui.paths import panel_dirs
    from ui.widgets.viewer import Viewer

    session = PanelSession("tcp://127.0.0.1:9", panel_dirs(tmp_path), launcher=tokenflow_command)
    try:
        assert session.clip.open(shipped_clip) is not None
        viewer = Viewer(session)
        viewer.resize(616, 416)  # a 600x400 picture box: wide enough that the aspect decides the width
        preview = QImage(128, 128, QImage.Format.Format_RGB888)
        preview.fill(QColor(255, 0, 255))
        viewer.result_image = lambda: (preview, "preview")  # what the jobs model hands over mid-edit
        session.viewer.set_mode(CompareMode.RESULT)
        picture = viewer.grab().toImage()
        row = [picture.pixelColor(x, picture.height() // 2) for x in range(picture.width())]
        magenta = [x for x, c in enumerate(row) if c.red() > 200 and c.blue() > 200 and c.green() < 60]
        drawn_width = magenta[-1] - magenta[0] + 1
        assert abs(drawn_width - 400 * 176 / 144) <= 3, drawn_width  # 489 px, not 400 (square)
    finally:
        session.close()


def test_the_progress_bar_never_runs_backwards(qapp):
    """Issue 20 item 6: reading 8/8 frames showed a full bar, then 3% once the edit began."""
    from ui.model.jobs import JobsModel

    jobs = JobsModel()
    shown = []
    for seq, (stage, step, total, elapsed, eta) in enumerate([
        ("encode", 8, 8, 1.0, None),  # no ETA yet: a stage's own count is not the job's
        ("inversion", 1, 10, 2.0, 40.0),
        ("inversion", 2, 10, 3.0, 60.0),  # the estimate grew: the bar holds
        ("edit", 5, 10, 20.0, 20.0),
    ], start=1):
        jobs.apply_event(_event(EventKind.PROGRESS, seq, p.Progress(stage=stage, step=step, total=total,
                                                                    elapsed_s=elapsed, eta_s=eta)), None)
        shown.append(jobs.get("j1").fraction)
    assert shown[0] == 0.0 and shown == sorted(shown) and shown[-1] == 0.5
    jobs.apply_event(_event(EventKind.REQUEUED, 9, p.Requeued(attempt=2, reason="server restarted")), None)
    assert jobs.get("j1").fraction == 0.0  # a new attempt starts again from the beginning


def test_the_first_eta_prices_only_unet_work():
    """Issue 20 item 6: reading and encoding the clip before the first UNet pass were priced as
    passes, so the first ETA said 2 m 58 s for a 38 s job."""
    from tokenflow.engine import _Clock

    class Stats:
        now = 0.0
        unet_passes: dict[str, int] = {}

        def elapsed(self) -> float:
            return self.now

    stats = Stats()
    clock = _Clock(stats, planned_passes=100)  # type: ignore[arg-type]
    stats.now = 9.0  # nine seconds of reading and VAE encoding, no UNet pass yet
    assert clock.eta() is None
    stats.now, stats.unet_passes = 10.0, {"inversion": 10}  # ten passes in one second
    assert clock.eta() == 9.0  # 90 passes left at 0.1 s each, not at 1 s each
