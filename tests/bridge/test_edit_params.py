"""The one table of edit parameters (bridge/wire/edit_params.py): it agrees with the engine's
input type, its checks say what is wrong by name, and the command line, the server's
checks, the wire, the panel's form and docs/protocol.md are all derived from it."""

from __future__ import annotations

import argparse
import dataclasses
import typing
from pathlib import Path

import pytest

from bridge.wire import edit_params as ep
from bridge.wire import protocol as p
from bridge.wire.edit_params import EDIT_OPTIONS, ParamsError, complete, flag_name, problems
from tokenflow.params import EditParams, Method

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
RANGED = [o for o in EDIT_OPTIONS if o.minimum is not None or o.maximum is not None]


def test_the_table_names_every_field_of_the_engines_input_with_its_type():
    hints = typing.get_type_hints(EditParams)
    assert [o.name for o in EDIT_OPTIONS] == [f.name for f in dataclasses.fields(EditParams)]
    for option in EDIT_OPTIONS:
        tp = hints[option.name]
        expected = list if tp == tuple[str, ...] else (tp if tp in (int, float, bool, str) else str)
        assert option.type is expected, option.name
    assert ep.BY_NAME["method"].choices == typing.get_args(Method)
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(EditParams)), "defaults live in the table"


def test_the_documented_table_is_the_rendered_table():
    text = DOC.read_text(encoding="utf-8")
    begin, end = "<!-- edit-parameters: begin -->\n", "<!-- edit-parameters: end -->"
    documented = text[text.index(begin) + len(begin):text.index(end)]
    assert documented == ep.markdown_table(), "regenerate docs/protocol.md's table from edit_params.markdown_table()"


def test_complete_fills_the_defaults_and_makes_floats():
    values = complete({"prompt": "x", "guidance": 7})
    assert values == {**{o.name: o.default for o in EDIT_OPTIONS}, "prompt": "x", "guidance": 7.0}
    assert isinstance(values["guidance"], float)
    assert EditParams(**values).steps == ep.BY_NAME["steps"].default


def _outside(option: ep.EditOption) -> list[float]:
    step = 1 if option.type is int else 0.01
    return [option.type(v) for v in (
        None if option.minimum is None else option.minimum - step,
        None if option.maximum is None else option.maximum + step, *option.excluded) if v is not None]


@pytest.mark.parametrize("option", RANGED, ids=lambda o: o.name)
def test_each_range_accepts_its_edges_and_refuses_past_them_by_name(option):
    for edge in (option.minimum, option.maximum):
        if edge is not None:
            assert problems({"prompt": "x", option.name: option.type(edge)}) == {}, edge
    for value in _outside(option):
        found = problems({"prompt": "x", option.name: value})
        assert list(found) == [option.name] and found[option.name].startswith(option.name), found


@pytest.mark.parametrize(
    "values, name, words",
    [
        ({"prompt": " "}, "prompt", "prompt is empty"),
        ({}, "prompt", "prompt is required"),
        ({"prompt": "x" * 1001}, "prompt", "77 tokens, so at most 1000 characters"),
        ({"prompt": "x", "negative_prompt": "a\0b"}, "negative_prompt", "NUL"),
        ({"prompt": "x", "short_side": 16}, "short_side", "short_side must be 0 (the model's size), or 64..2048 (got 16)"),
        ({"prompt": "x", "short_side": 4096}, "short_side", "64..2048 (got 4096); Stable Diffusion"),
        ({"prompt": "x", "max_joint_keyframes": 1}, "max_joint_keyframes", "must be 0 (auto), or 2..1024 (got 1)"),
        ({"prompt": "x", "method": "sideways"}, "method", "\"tokenflow\" or \"per-frame\" (got 'sideways')"),
        ({"prompt": "x", "steps": "many"}, "steps", "steps must be an integer (got str)"),
        ({"prompt": "x", "steps": True}, "steps", "steps must be an integer (got bool)"),
        ({"prompt": "x", "guidance": float("nan")}, "guidance", "finite number"),
        ({"prompt": "x", "stpes": 3}, "stpes", "Unknown edit parameter 'stpes'"),
    ],
)
def test_problems_say_what_is_wrong_in_one_sentence(values, name, words):
    found = problems(values)
    assert list(found) == [name] and words in found[name], found
    with pytest.raises(ParamsError) as err:
        complete(values)
    assert err.value.name == name


def test_the_command_line_names_its_options():
    found = problems({"prompt": "x", "short_side": 16, "kf_interval": 0}, flag_name)
    assert found["short_side"].startswith("--size must be 0") and found["kf_interval"].startswith("--kf-interval")


# --- everything derived: change the table, and every side follows ---


@pytest.fixture
def narrowed(monkeypatch):
    """The table with `steps` defaulting to 12 in 1..20 and prompts of at most 30 characters."""
    changed = {"steps": dataclasses.replace(ep.BY_NAME["steps"], default=12, maximum=20),
               "prompt": dataclasses.replace(ep.BY_NAME["prompt"], max_chars=30)}
    monkeypatch.setattr(ep, "EDIT_OPTIONS", tuple(changed.get(o.name, o) for o in EDIT_OPTIONS))
    for name, option in changed.items():
        monkeypatch.setitem(ep.BY_NAME, name, option)


def _parser(register) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser


def test_the_command_line_follows_the_table(narrowed, capsys):
    from cli import edit, jobs

    edit_parser, submit_parser = _parser(edit.register), _parser(jobs.register)
    args = edit_parser.parse_args(["edit", "clip.mp4", "-p", "x"])
    assert edit.params_from_args(args).steps == 12
    with pytest.raises(ValueError, match="--steps 21 is too large: it must be at least 1 and at most 20"):
        edit.params_from_args(edit_parser.parse_args(["edit", "clip.mp4", "-p", "x", "--steps", "21"]))
    with pytest.raises(SystemExit):
        submit_parser.parse_args(["submit", "--help"])
    assert "denoising steps (default: 12)" in " ".join(capsys.readouterr().out.split())
    # `tokenflow submit` refuses before it connects (no server here).
    submit = submit_parser.parse_args(["submit", "clip.mp4", "-p", "x", "--steps", "21", "--server", "ipc:///nowhere"])
    assert jobs.run_submit(submit) == jobs.EXIT_BAD_INPUT
    assert "--steps 21 is too large" in capsys.readouterr().err
    submit = submit_parser.parse_args(["submit", "clip.mp4", "-p", "y" * 31, "--server", "ipc:///nowhere"])
    assert jobs.run_submit(submit) == jobs.EXIT_BAD_INPUT
    assert "at most 30 characters" in capsys.readouterr().err


@pytest.mark.parametrize("option", RANGED, ids=lambda o: o.name)
def test_the_servers_submission_refuses_each_range_by_field(option):
    from server.submission import SubmitError, edit_params

    for value in _outside(option):
        with pytest.raises(SubmitError) as err:
            edit_params({"prompt": "x", option.name: value})
        assert (err.value.code, err.value.field) == ("bad_params", f"body.spec.params.{option.name}")


def test_the_server_and_the_wire_follow_the_table(narrowed):
    from server.submission import SubmitError, edit_params

    assert edit_params({"prompt": "x"}).steps == 12
    with pytest.raises(SubmitError, match="steps 21 is too large") as err:
        edit_params({"prompt": "x", "steps": 21})
    assert err.value.field == "body.spec.params.steps"
    frames = p.encode(p.Envelope(p.Submit(spec=p.JobSpec(input="/a.mp4", params={"prompt": "y" * 31})), rid=1))
    with pytest.raises(p.ProtocolError, match="at most 30 characters") as wire:
        p.decode(frames, allowed=p.REQUEST_TYPES)
    assert (wire.value.code, wire.value.field) == ("bad_field", "body.spec.params.prompt")


def test_the_panels_form_follows_the_table(narrowed):
    pytest.importorskip("PySide6")
    from ui.model.presets import EditForm

    assert EditForm().steps == 12 and EditForm.spin_range("steps") == (1, 20)
    assert EditForm(prompt="x", steps=21).problem() == "Steps 21 is too large: it must be at least 1 and at most 20."
    assert "at most 30 characters" in EditForm(prompt="y" * 31).problem()
    assert EditForm(prompt="x", steps=20).problem() == ""


def test_the_panels_form_defaults_are_the_tables():
    pytest.importorskip("PySide6")
    from ui.model.presets import EditForm

    form = EditForm()
    for name in ("seed", "steps", "guidance", "kf_interval", "short_side"):
        assert getattr(form, name) == ep.BY_NAME[name].default, name
        low, high = EditForm.spin_range(name)
        assert low <= ep.BY_NAME[name].default <= high, name
    assert EditForm.spin_range("short_side") == (0, 2048)  # 0: the model's own size
    assert EditForm(loras="a.safetensors:0.5, b").params()["loras"] == ["a.safetensors:0.5", "b"]
    assert EditForm.from_params({"loras": ["a:0.5", "b"]}).loras == "a:0.5, b"
