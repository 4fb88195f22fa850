"""The handoff to the project's environment, for real: a child process, a `tokenflow serve` it starts, the tiny model."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.editors import handoff_jobs
from bridge.editors import resolve as r
from bridge.editors.handoff import RESULT_PREFIX, ClipRef, HandoffRequest, HandoffResult
from cli import handoff
from cli.launch import tokenflow_command
from tests.bridge.fake_resolve import FakeResolve

REPO = Path(__file__).resolve().parents[2]
START = 108000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resolve_launcher_hands_off_to_a_started_server_and_places_the_result(
        tiny_model_dir, shipped_clip, tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("TOKENFLOW_SERVER", f"tcp://127.0.0.1:{_free_port()}")  # nobody answers there yet
    monkeypatch.setenv("TOKENFLOW_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("TOKENFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("TOKENFLOW_CACHE_DIR", str(tmp_path / "cache"))
    app = FakeResolve()
    tl = app.project.add_timeline(start_frame=START, tracks=1)
    tl.add(1, "carphone", app.media(shipped_clip), start=START + 50, duration=4, left_offset=20)
    tl.playhead = START + 51
    said: list[str] = []
    options = {"preset": "png", "output_dir": str(data / "outputs"),
               "params": {"steps": 2, "short_side": 64, "kf_interval": 4}}
    try:
        placed = r.launch(app, tokenflow_command("handoff").argv, tokenflow_command("handoff").env, ask=lambda n: ("submit", "a watercolor painting", 5),
                          say=said.append, options=options)
    finally:
        started = [int(m.group(1)) for line in said for m in [re.search(r"local TokenFlow server \(pid (\d+)", line)] if m]
        for pid in started:
            os.kill(pid, signal.SIGTERM)
    log = "\n".join(said)
    assert started, log
    assert placed == 1, log
    imports = [args[0][0] for _, m, args in app.calls if m == "ImportMedia"]
    assert len(imports) == 1
    info = imports[0]
    assert (info["StartIndex"], info["EndIndex"]) == (20, 23)  # numbered from the source frames
    assert info["FilePath"].endswith("_%06d.png") and Path(info["FilePath"]).parent.parent == data / "outputs"
    for n in range(20, 24):
        assert Path(info["FilePath"] % n).is_file()
    assert not Path(info["FilePath"] % 24).exists()
    new = tl.tracks[1]
    assert [(i.start, i.duration) for i in new] == [(START + 50, 4)]
    meta = app.project.media_pool.root.subfolders[0].clips[0]
    assert meta.third_party["TokenFlow Prompt"] == "a watercolor painting" and meta.third_party["TokenFlow Seed"] == "5"
    assert re.fullmatch(r"[A-Za-z0-9_-]+", meta.third_party["TokenFlow Job"])


def test_a_bad_request_exits_2_with_a_sentence(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"clips": [], "mode": "submit"}'))
    assert handoff.main([]) == 2
    assert "clips: no clip to edit" in capsys.readouterr().err


def test_no_server_and_no_autostart_fails_every_clip_with_advice(shipped_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "CONNECT_TIMEOUT_S", 0.3)
    request = HandoffRequest(clips=[ClipRef(str(shipped_clip), 0, 3, "30000/1001")] * 2, mode="submit", prompt="x")
    path = tmp_path / "req.json"
    path.write_text(request.to_json())
    out = io.StringIO()
    code = handoff.main(["--request", str(path), "--server", f"tcp://127.0.0.1:{_free_port()}",
                             "--no-start-server"], out=out)
    results = [HandoffResult.from_line(line) for line in out.getvalue().splitlines()]
    assert code == 1 and [x.state for x in results] == ["failed", "failed"]
    assert "tokenflow serve" in results[0].message


def test_outputs_never_reuse_an_existing_name(shipped_clip, tmp_path):
    clip = ClipRef(str(shipped_clip), 10, 29, "30000/1001")
    request = HandoffRequest(clips=[clip], mode="submit", prompt="A Watercolor, painting!", output_dir=str(tmp_path))
    first = handoff_jobs.output_for(clip, request)
    assert first == str(tmp_path / "carphone_pristine_10-29_a-watercolor-painting.mov")
    Path(first).write_bytes(b"x")
    assert handoff_jobs.output_for(clip, request).endswith("_a-watercolor-painting_2.mov")
    seq = handoff_jobs.output_for(clip, HandoffRequest(clips=[clip], mode="submit", prompt="p", preset="png",
                                                      output_dir=str(tmp_path)))
    assert seq == str(tmp_path / "carphone_pristine_10-29_p" / "carphone_pristine_10-29_p_%06d.png")
    exr = handoff_jobs.output_for(clip, HandoffRequest(clips=[clip], mode="submit", prompt="p", preset="exr_half",
                                                      output_dir=str(tmp_path)))
    assert exr.endswith("_%06d.exr")
    with pytest.raises(ValueError, match="preset"):
        handoff_jobs.output_for(clip, HandoffRequest(clips=[clip], mode="submit", prompt="p", preset="betamax"))


def _ask_request(tmp_path, shipped_clip) -> Path:
    request = HandoffRequest(clips=[ClipRef(str(shipped_clip), 0, 3, "30000/1001", name="carphone")] * 2, mode="ask")
    path = tmp_path / "ask.json"
    path.write_text(request.to_json())
    return path


def test_ask_mode_closed_dialog_cancels_every_clip_and_sends_nothing(shipped_clip, tmp_path):
    out = io.StringIO()
    asked = []

    def never_connect(*a, **k):
        raise AssertionError("nothing may be sent after the dialog was closed")

    code = handoff.main(["--request", str(_ask_request(tmp_path, shipped_clip))], out=out,
                            connect_fn=never_connect, ask_fn=lambda r: asked.append(r) or None)
    results = [HandoffResult.from_line(line) for line in out.getvalue().splitlines()]
    assert code == 1 and [(x.state, x.job_id) for x in results] == [("cancelled", None)] * 2
    assert [c.name for c in asked[0].clips] == ["carphone", "carphone"]


def test_ask_mode_submits_with_the_dialogs_prompt_and_seed(shipped_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "CONNECT_TIMEOUT_S", 0.3)
    out = io.StringIO()
    code = handoff.main(["--request", str(_ask_request(tmp_path, shipped_clip)), "--server",
                             f"tcp://127.0.0.1:{_free_port()}", "--no-start-server"], out=out,
                            ask_fn=lambda r: ("submit", "ink drawing", 9))
    results = [HandoffResult.from_line(line) for line in out.getvalue().splitlines()]
    assert code == 1 and {(x.state, x.prompt, x.seed) for x in results} == {("failed", "ink drawing", 9)}


def test_without_a_display_the_dialog_gives_way_to_the_panel(shipped_clip, monkeypatch):
    from bridge.editors import prompt_dialog

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        with pytest.raises(prompt_dialog.DialogUnavailable):
            prompt_dialog.ask(["carphone"])
    monkeypatch.setattr(prompt_dialog, "ask", lambda names: (_ for _ in ()).throw(prompt_dialog.DialogUnavailable("x")))
    request = HandoffRequest(clips=[ClipRef(str(shipped_clip), 0, 3, "30000/1001")], mode="ask")
    assert handoff.answered(request, handoff._ask_with_dialog).mode == "panel"


@pytest.mark.skipif(not shutil.which("xvfb-run"), reason="needs Xvfb (apt-get install xvfb xauth)")
@pytest.mark.parametrize("prompt, seed, button, expected", [
    ("a watercolor painting", "5", "Edit", "ANSWER ('submit', ['a watercolor painting'], 5)"),
    ("ink", "", "Edit", "ANSWER ('submit', ['ink'], None)"),
    ("ink|pencil sketch| |oil", "3", "Edit", "ANSWER ('submit', ['ink', 'pencil sketch', 'oil'], 3)"),
    ("|".join("123456789"), "", "Edit", "ANSWER ('submit', ['1', '2', '3', '4', '5', '6', '7', '8'], None)"),
    ("", "", "Edit", "ERROR Type a prompt"),
    ("ink", "-3", "Edit", "ERROR The seed is a whole number"),
    ("", "", "Open panel...", "ANSWER ('panel', None, None)"),
    ("ink", "", "Cancel", "ANSWER None"),
])
def test_the_prompt_dialog_in_a_real_tk(prompt, seed, button, expected):
    done = subprocess.run(["xvfb-run", "-a", sys.executable, str(Path(__file__).parent / "tk_dialog_driver.py"),
                           prompt, seed, button], capture_output=True, text=True, timeout=60)
    assert expected in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("preset", ["mov", "png"])
def test_several_prompts_go_in_one_job_and_come_back_one_result_each(preset, tiny_model_dir, shipped_clip,
                                                                      tmp_path):
    from tests.e2e.conftest import ServeProcess

    serve = ServeProcess(tmp_path / "serve", tiny_model_dir).start()
    try:
        prompts = ["a watercolor painting", "pencil sketch"]
        request = HandoffRequest(clips=[ClipRef(str(shipped_clip), 20, 23, "30000/1001", name="carphone")],
                                 mode="submit", prompt=prompts[0], variants=prompts[1:], seed=5, preset=preset,
                                 output_dir=str(serve.out), params={"steps": 2, "short_side": 64, "kf_interval": 4})
        path = tmp_path / "req.json"
        path.write_text(request.to_json())
        out = io.StringIO()
        code = handoff.main(["--request", str(path), "--server", serve.endpoint, "--no-start-server"], out=out)
    finally:
        serve.stop()
    results = [HandoffResult.from_line(line) for line in out.getvalue().splitlines()]
    assert code == 0, out.getvalue() + serve.log.read_text()[-3000:]
    assert [(x.state, x.variant, x.prompt, x.seed) for x in results] == [
        ("queued", 0, prompts[0], 5), ("queued", 1, prompts[1], 5), ("done", 0, prompts[0], 5),
        ("done", 1, prompts[1], 5)]
    assert len({x.job_id for x in results}) == 1  # one job for the clip, not one per prompt
    queued, done = results[:2], results[2:]
    assert [x.output for x in done] == [x.output for x in queued]  # the server named them as predicted
    again = handoff_jobs.outputs_for(handoff_jobs.output_for(request.clips[0], request), request)
    assert not set(again) & {x.output for x in done}  # the next handoff never reuses a taken name
    if preset == "png":
        assert [Path(x.output).parent.name for x in done] == ["a-watercolor-painting", "pencil-sketch"]
        assert all((x.first_number, x.last_number) == (20, 23) for x in done)
        files = [[Path(x.output % n) for n in range(20, 24)] for x in done]
    else:
        assert [Path(x.output).name for x in done] == ["carphone_pristine_20-23_a-watercolor-painting.mov",
                                                      "carphone_pristine_20-23_pencil-sketch.mov"]
        files = [[Path(x.output)] for x in done]
    assert all(f.is_file() for group in files for f in group)
    assert files[0][0].read_bytes() != files[1][0].read_bytes()  # each prompt's own picture


def test_a_one_prompt_request_and_result_read_as_in_version_1(shipped_clip):
    request = HandoffRequest(clips=[ClipRef(str(shipped_clip), 0, 3, "25")], mode="submit", prompt="ink")
    assert "variants" not in json.loads(request.to_json()) and request.prompts == ["ink"]
    line = HandoffResult(clip_index=0, state="done", prompt="ink").to_line()
    assert "variant" not in json.loads(line[len(RESULT_PREFIX):]) and HandoffResult.from_line(line).variant == 0
    several = HandoffRequest.from_json(HandoffRequest(clips=request.clips, mode="submit", prompt="ink",
                                                      variants=["oil"]).to_json())
    assert several.prompts == ["ink", "oil"]
    with pytest.raises(ValueError, match="variants"):
        HandoffRequest(clips=request.clips, mode="ask", variants=["oil"])
    with pytest.raises(ValueError, match="variants"):
        HandoffRequest(clips=request.clips, mode="submit", prompt="ink", variants=[" "])


def test_ask_mode_with_several_prompts_fails_each_prompt_when_no_server(shipped_clip, tmp_path, monkeypatch):
    monkeypatch.setattr(handoff, "CONNECT_TIMEOUT_S", 0.3)
    out = io.StringIO()
    code = handoff.main(["--request", str(_ask_request(tmp_path, shipped_clip)), "--server",
                         f"tcp://127.0.0.1:{_free_port()}", "--no-start-server"], out=out,
                        ask_fn=lambda r: ("submit", ["ink drawing", "oil"], 9))
    results = [HandoffResult.from_line(line) for line in out.getvalue().splitlines()]
    assert code == 1
    assert [(x.clip_index, x.variant, x.prompt, x.state) for x in results] == [
        (0, 0, "ink drawing", "failed"), (0, 1, "oil", "failed"), (1, 0, "ink drawing", "failed"),
        (1, 1, "oil", "failed")]


def test_resolve_launcher_stacks_every_look_of_one_job_above_the_source(tiny_model_dir, shipped_clip, tmp_path,
                                                                        monkeypatch):
    """The whole route: Resolve's launcher, the child (this checkout's), a real server, two prompts in one job."""
    from tests.e2e.conftest import ServeProcess

    serve = ServeProcess(tmp_path / "serve", tiny_model_dir).start()
    monkeypatch.setenv("TOKENFLOW_SERVER", serve.endpoint)
    app = FakeResolve()
    tl = app.project.add_timeline(start_frame=START, tracks=1)
    tl.add(1, "carphone", app.media(shipped_clip), start=START + 50, duration=4, left_offset=20)
    tl.playhead = START + 51
    said: list[str] = []
    options = {"preset": "png", "output_dir": str(serve.out), "params": {"steps": 2, "short_side": 64, "kf_interval": 4}}
    child = [sys.executable, "-m", "cli", "handoff", "--no-start-server"]
    try:
        placed = r.launch(app, child, {"PYTHONPATH": str(REPO)}, say=said.append, options=options,
                          ask=lambda n: ("submit", ["a watercolor painting", "pencil sketch"], 5))
    finally:
        serve.stop()
    log = "\n".join(said)
    assert placed == 2, log
    assert [(n, [(i.start, i.duration) for i in track]) for n, track in enumerate(tl.tracks, 1)] == [
        (1, [(START + 50, 4)]), (2, [(START + 50, 4)]), (3, [(START + 50, 4)])], log
    bin_clips = app.project.media_pool.root.subfolders[0].clips
    assert [c.GetName() for c in bin_clips] == ["carphone 1: a watercolor painting", "carphone 2: pencil sketch"]
    assert [tl.tracks[n][0].GetMediaPoolItem() for n in (1, 2)] == bin_clips  # V2 the first prompt, V3 the second
    assert len({c.third_party["TokenFlow Job"] for c in bin_clips}) == 1
    assert sum("queued as job" in line for line in said) == 1
