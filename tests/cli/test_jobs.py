"""`tokenflow submit` and `tokenflow jobs` against an in-process server with a fake engine."""

from __future__ import annotations

import pytest

from bridge.wire.client import Client, ConnectionLost, EventKind
from cli import jobs
from cli.main import main
from tests.server.conftest import Harness
from tests.server.fake_engine import FakeEngine


@pytest.fixture
def harness(tmp_path, shipped_clip):
    h = Harness(tmp_path, FakeEngine(step_s=0.01), shipped_clip).start()
    yield h
    h.stop()


def test_submit_writes_the_output_and_exits_zero(harness, capsys):
    out = harness.root / "out" / "edit.mp4"
    code = main(["submit", str(harness.clip), "-p", "x", "--frames", "0:5", "--steps", "3", "-o", str(out),
                 "--server", harness.endpoint])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert out.is_file() and "done" in captured.out and str(out) in captured.out
    job = captured.err.split("Job ")[1].split()[0]
    assert main(["jobs", "show", job, "--server", harness.endpoint]) == 0
    assert "state: done" in capsys.readouterr().out
    assert main(["jobs", "list", "--server", harness.endpoint]) == 0
    assert job in capsys.readouterr().out


def test_submit_refused_input_exits_two_with_the_reason(harness, capsys):
    code = main(["submit", str(harness.clip), "-p", "x", "--frames", "500:900", "-o",
                 str(harness.root / "out" / "e.mp4"), "--server", harness.endpoint])
    assert code == 2
    err = capsys.readouterr().err
    assert "runs past the end of the clip" in err and "body.spec.frames" in err


def test_failed_job_exit_code_and_hint(harness, capsys):
    code = main(["submit", str(harness.clip), "-p", "trigger-oom", "--frames", "0:3", "-o",
                 str(harness.root / "out" / "e.mp4"), "--server", harness.endpoint])
    assert code == 1
    err = capsys.readouterr().err
    assert "out_of_memory" in err and "--size" in err


def test_no_server_is_a_readable_error(capsys):
    code = main(["jobs", "list", "--server", "tcp://127.0.0.1:9", "--timeout", "0.5"])
    assert code == 1
    assert "Is it running? Start it with `tokenflow serve`" in capsys.readouterr().err


def test_detach_then_cancel_and_watch(harness, capsys):
    harness.engine.step_s = 0.05
    code = main(["submit", str(harness.clip), "-p", "x", "--steps", "200", "--detach", "-o",
                 str(harness.root / "out" / "d.mp4"), "--server", harness.endpoint])
    assert code == 0
    job = capsys.readouterr().out.strip()
    assert main(["jobs", "cancel", job, "--server", harness.endpoint]) == 0
    assert main(["jobs", "watch", job, "--server", harness.endpoint]) == jobs.EXIT_CANCELLED


@pytest.mark.parametrize("answer, expected_state", [(True, "cancelled"), (False, "running")])
def test_ctrl_c_asks_to_cancel_or_leave_running(harness, monkeypatch, capsys, answer, expected_state):
    harness.engine.step_s = 0.05
    c = Client(harness.endpoint, timeout=5)
    c.connect()
    job = c.submit(harness.spec(steps=200)).job
    watch = c.events(job, 2, frames=False, proxies=False)
    next(e for e in watch if e.kind is EventKind.PROGRESS)  # running now: Ctrl-C comes mid-job
    watch.close()

    def interrupted(client, job_id, from_seq):
        raise KeyboardInterrupt

    monkeypatch.setattr(jobs, "_follow", interrupted)
    monkeypatch.setattr(jobs, "_ask_cancel", lambda job_id: answer)
    code = jobs._follow_interactively(c, job, 2)
    assert code == (jobs.EXIT_CANCELLED if answer else jobs.EXIT_OK)
    assert c.status(job).state == expected_state
    if not answer:
        assert f"tokenflow jobs watch {job}" in capsys.readouterr().err
        c.cancel(job)
    c.close()


def test_client_connect_timeout_message():
    with pytest.raises(ConnectionLost, match="No answer from the TokenFlow server"):
        Client("tcp://127.0.0.1:9", timeout=0.3).connect()


def test_curve_key_options_come_in_pairs(tmp_path):
    from bridge.wire.client import ClientError, CurveKeys

    assert CurveKeys.from_options(None, None) is None  # the local default: no keys
    with pytest.raises(ClientError, match="go together"):
        CurveKeys.from_options(tmp_path / "server.key", None)
    with pytest.raises(ClientError, match="go together"):
        CurveKeys.from_options(None, tmp_path / "client.key_secret")


def test_submit_help_names_the_default_output_the_server_writes(harness, capsys, tmp_path):
    """The help's INPUT_tokenflow_JOBID.mp4 is the file a submit without -o really gets."""
    import shutil
    from pathlib import Path

    from cli.main import build_parser

    help_text = " ".join(build_parser("submit")._subparsers._group_actions[0].choices["submit"].format_help().split())
    shown = jobs.default_output_name("INPUT")
    assert f"default: {shown} beside the input" in help_text
    clip = str(shutil.copy(harness.clip, harness.root / "out" / "shot.mp4"))  # an allowed folder
    assert main(["submit", clip, "-p", "x", "--frames", "0:2", "--steps", "2", "--server", harness.endpoint]) == 0
    job = capsys.readouterr().err.split("Job ")[1].split()[0]
    expected = shown.replace("INPUT", "shot").replace("JOBID", job)
    assert (Path(clip).parent / expected).is_file()


def test_jobs_show_reads_as_text_not_as_a_record(harness, capsys):
    """Local clock times instead of Unix timestamps, and no Python `None` for fields not set."""
    import time

    assert main(["submit", str(harness.clip), "-p", "x", "--frames", "0:2", "--steps", "2", "-o",
                 str(harness.root / "out" / "s.mp4"), "--server", harness.endpoint]) == 0
    job = capsys.readouterr().err.split("Job ")[1].split()[0]
    assert main(["jobs", "show", job, "--server", harness.endpoint]) == 0
    shown = capsys.readouterr().out
    assert "None" not in shown
    created = next(line for line in shown.splitlines() if line.startswith("created:")).split(":", 1)[1].strip()
    assert abs(time.mktime(time.strptime(created, "%Y-%m-%d %H:%M:%S")) - time.time()) < 120
    assert "frames:" in shown and "0:2" in shown and str(harness.root / "out" / "s.mp4") in shown


def test_submit_sends_a_relative_matte_as_an_absolute_path(harness, capsys, monkeypatch):
    # Found by trying it: `submit --matte roto.%04d.png` was refused ("The matte path ... is
    # relative. Send an absolute path") while the relative input beside it was made absolute.
    from PIL import Image

    folder = harness.root / "mattes"
    folder.mkdir()
    for n in range(4):
        Image.new("L", (176, 144), 255).save(folder / f"roto.{n:04d}.png")
    monkeypatch.chdir(harness.root)
    code = main(["submit", str(harness.clip), "-p", "x", "--frames", "0:3", "--steps", "2",
                 "--matte", "mattes/roto.%04d.png", "-o", str(harness.root / "out" / "m.mp4"),
                 "--server", harness.endpoint])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert (harness.root / "out" / "m.mp4").is_file()
