"""Pure rules of issue 20 (items 14, 16, 17): where outputs may go, the host-memory estimate,
names made from a template's literal text."""

from __future__ import annotations

from bridge.wire import naming
from server.bounds import memory, memory_problem
from server.output_roots import OutputRoots

GB = 1 << 30


def test_memory_grows_with_source_size_times_batch():
    """Six 8192x8192 frames peaked at 15.8 GB with batch size 6 and 5.8 GB with batch size 1 (measured
    on a 23 GB machine): the estimate must follow the batch and stay on the generous side."""
    six = memory(6, 8192, 8192, 512, 50, batch_size=6).total
    one = memory(6, 8192, 8192, 512, 50, batch_size=1).total
    assert 15.8 * 1e9 <= six <= 22 * 1e9 and 5.8 * 1e9 <= one <= 8 * 1e9
    assert memory(6, 8192, 8192, 512, 50, batch_size=64).batch == 6  # never more than the frames


def test_each_extra_prompt_adds_its_own_latents_and_its_own_stored_and_written_frames():
    from server.bounds import estimate

    one = estimate(100, 1920, 1080, 512, 50, "movie", 8)
    three = estimate(100, 1920, 1080, 512, 50, "movie", 8, prompts=3)
    assert three.memory_bytes > one.memory_bytes  # each prompt's running latents and noise estimates
    assert (three.data_bytes, three.output_bytes) == (3 * one.data_bytes, 3 * one.output_bytes)
    assert three.cache_bytes == one.cache_bytes  # one inversion, shared


def test_forty_huge_frames_are_refused_with_the_numbers_and_what_to_lower():
    problem = memory_problem(memory(40, 8192, 8192, 512, 50, batch_size=8), 8192, 8192, 512, available=23 * GB)
    assert problem is not None
    for words in ("40 frames of 8192x8192", "working size 512x512", "batch size 8", "to decode 8 at a time",
                  "this machine has", "--batch-size 6", "--size"):
        assert words in problem, (words, problem)
    # memory held per frame dominates a long job: the frames range is what to lower
    long = memory_problem(memory(4000, 1920, 1080, 512, 50, batch_size=8), 1920, 1080, 512, available=23 * GB)
    assert long is not None and "--frames range to at most" in long
    assert memory_problem(memory(6, 8192, 8192, 512, 50, batch_size=1), 8192, 8192, 512, available=23 * GB) is None


def test_the_data_folders_internals_are_never_a_destination(tmp_path):
    home, data = tmp_path / "home", tmp_path / "home" / ".local" / "share" / "tokenflow"
    roots = OutputRoots(allowed=(home.resolve(), (data / "outputs").resolve()), private=(data.resolve(),))
    assert roots.permits(home / "renders" / "a.mp4")
    assert roots.permits(data / "outputs" / "job" / "a.mp4")
    for inside in (data / "jobs" / "j" / "a.mp4", data / "jobs" / "j" / "frames" / "00000001.png",
                   data / "jobs.sqlite3", data / "trash" / "x", data / "outputs" / ".." / "jobs" / "x.mp4"):
        assert not roots.permits(inside), inside
    # a link inside an allowed folder that leads into the data folder counts as the data folder
    (home / "renders").mkdir(parents=True)
    (data / "jobs").mkdir(parents=True)
    (home / "renders" / "link").symlink_to(data / "jobs")
    assert not roots.permits(home / "renders" / "link" / "a.mp4")


def test_a_templates_literal_text_is_sanitized():
    values = dict(clip="c", first=0, last=1, prompt="p", seed=1, job="j", batch="b", row=3)
    name = naming.render('evil\nname:*?<>|"{row}', values)
    assert name == "evil_name_______3"
    assert all(ch not in name for ch in '\n\r\t:*?<>|"\\/')


def test_a_several_prompt_jobs_template_name_leaves_the_prompt_to_each_output():
    """With several prompts each output adds its own prompt (naming.variant_outputs): the job's name
    drops `{prompt}` and one separator beside it, so no output carries the first prompt's words."""
    values = dict(clip="shot", first=0, last=3, prompt=None, seed=7, job="j1", batch="b", row=1)
    assert naming.render(naming.DEFAULT_TEMPLATE, values) == "shot_0-3_7_j1"
    assert naming.render("{prompt}_{clip}", values) == "shot"
    assert naming.render("{clip}-{prompt}-{seed}", values) == "shot-7"
    assert naming.render("{prompt}", values) == "shot"  # never an empty name
    base = naming.render(naming.DEFAULT_TEMPLATE, values)
    assert naming.prompt_outputs(f"/out/{base}.mov", ["red car", "snow"]) == [
        "/out/shot_0-3_7_j1_red-car.mov", "/out/shot_0-3_7_j1_snow.mov"]
