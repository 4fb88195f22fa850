"""Repeated -p refused in command-line words: the table checks the extra prompts as the wire's
`variants`, a key `tokenflow edit` and `submit` never show (found by trying 9 prompts and an
empty second one: "variants has 8 items" for nine -p). And matte switches without a matte,
which used to edit the whole frame without a word."""

from __future__ import annotations

import pytest

from cli.batch import job_from_mapping
from cli.main import main


@pytest.mark.parametrize("command", ["edit", "submit"])
def test_too_many_prompts_say_how_many_were_given_and_the_limit(command, shipped_clip, tmp_path, capsys):
    prompts = [arg for n in range(9) for arg in ("-p", f"look {n}")]
    code = main([command, str(shipped_clip), *prompts, "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert "-p is given 9 times, but at most 8 prompts" in err and "variants" not in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["edit", "submit"])
def test_an_empty_second_prompt_is_named_by_its_place(command, shipped_clip, tmp_path, capsys):
    code = main([command, str(shipped_clip), "-p", "snow", "-p", "  ", "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert "given by -p number 2 is empty: describe the edit" in err and "variants" not in err


@pytest.mark.parametrize("command", ["edit", "submit"])
def test_matte_switches_without_a_matte_are_refused_before_any_work(command, shipped_clip, tmp_path, capsys):
    # A forgotten --matte used to edit the whole frame without a word.
    code = main([command, str(shipped_clip), "-p", "snow", "--matte-invert", "-o", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2 and "--matte-invert applies to a matte, but no --matte was given" in err
    assert not list(tmp_path.iterdir())


def test_a_batch_row_with_matte_switches_but_no_matte_names_the_keys(tmp_path):
    job_from_mapping({"input": "c.mp4", "prompt": "s", "matte_invert": "no", "matte_feather": "0"}, "row 1", 1,
                     tmp_path, {})
    with pytest.raises(ValueError, match="matte_invert and matte_feather apply to a matte, but no matte was given"):
        job_from_mapping({"input": "c.mp4", "prompt": "s", "matte_invert": "yes", "matte_feather": "2"}, "row 1", 1,
                         tmp_path, {})


def test_queue_add_refuses_a_repeated_prompt_instead_of_keeping_the_last(shipped_clip, tmp_path, capsys):
    # `queue add jobs.csv -p A -p B` used to queue B alone: -p repeats on edit and submit.
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"input,range\n{shipped_clip},0:3\n")
    code = main(["queue", "add", str(jobs), "-d", str(tmp_path), "-p", "a", "-p", "b", "--dry-run",
                 "--server", "ipc:///nonexistent/none"])
    err = capsys.readouterr().err
    assert code == 2 and "-p is given 2 times" in err and "`variants` key" in err
