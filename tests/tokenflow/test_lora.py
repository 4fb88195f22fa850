"""LoRA adapters: applied, scaled, kept between jobs with the same set, never mixed up."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from bridge.wire import lora_spec
from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow import lora
from tokenflow.engine import Engine
from tokenflow.errors import UnsupportedModel
from tokenflow.tiny import make_tiny_lora

BASE = make_params(prompt="a watercolor painting", steps=2, short_side=64, kf_interval=2, seed=1)


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 10, 3)


@pytest.fixture(scope="module")
def loras(tiny_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("loras")
    return {name: str(make_tiny_lora(tiny_model_dir, folder / f"{name}.safetensors", seed=seed))
            for name, seed in (("a", 1), ("b", 2))}


@pytest.fixture(scope="module")
def engine(tiny_model_dir, tmp_path_factory):
    return Engine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path_factory.mktemp("lora-cache"))


def edited(engine, frames, *loras_given: str) -> tuple[torch.Tensor, bool]:
    stats = engine.edit(frames, len(frames), dataclasses.replace(BASE, loras=tuple(loras_given)))
    return engine.last_latents.clone(), stats.inversion_cached


def test_loras_change_the_edit_scale_zero_is_none_and_jobs_in_a_row_do_not_mix(engine, frames, loras):
    base, _ = edited(engine, frames)
    b_alone, _ = edited(engine, frames, loras["b"])  # loaded onto the base model
    a, _ = edited(engine, frames, loras["a"])  # b unloaded, a loaded
    b_after_a, _ = edited(engine, frames, loras["b"])
    half, _ = edited(engine, frames, f"{loras['b']}:0.5")
    zero, _ = edited(engine, frames, f"{loras['a']}:0")
    base_again, _ = edited(engine, frames)
    assert (base - a).abs().max() > 1e-3 and (a - b_alone).abs().max() > 1e-3
    assert torch.equal(b_after_a, b_alone) and torch.equal(base_again, base) and torch.equal(zero, base)
    assert (half - b_alone).abs().max() > 1e-4 and (half - base).abs().max() > 1e-4  # the scale is applied


def test_the_same_set_stays_loaded_between_jobs(engine, frames, loras):
    edited(engine, frames, loras["a"])
    loaded = engine.loras.loaded
    assert not engine.loras.use((loras["a"],))  # nothing to do
    assert engine.loras.loaded is loaded


def test_an_inversion_is_reused_only_with_the_same_lora_set(engine, frames, loras):
    clip = frames[:2]
    assert edited(engine, clip, loras["a"])[1] is False
    assert edited(engine, clip, loras["a"])[1] is True
    assert edited(engine, clip, loras["b"])[1] is False
    assert edited(engine, clip, f"{loras['b']}:0.5")[1] is False
    assert edited(engine, clip)[1] is False
    assert edited(engine, clip, f"{loras['a']}:0")[1] is True  # scale 0 is the base model


def test_a_lora_for_another_family_is_refused_before_any_work(tiny_sdxl_engine, frames, loras):
    events = []
    params = dataclasses.replace(BASE, loras=(loras["a"],))
    with pytest.raises(UnsupportedModel, match="trained for .*SDXL") as caught:
        tiny_sdxl_engine.edit(frames, len(frames), params, on_event=events.append)
    assert events == [] and "use a LoRA made for this model's base" in str(caught.value)
    assert tiny_sdxl_engine.loras.loaded == ()


def test_an_sdxl_lora_changes_an_sdxl_edit(tiny_sdxl_engine, tiny_sdxl_model_dir, frames, tmp_path):
    path = str(make_tiny_lora(tiny_sdxl_model_dir, tmp_path / "xl.safetensors"))
    assert lora.describe_lora_file(tmp_path / "xl.safetensors") == "unknown (text width 64)"  # the tiny width
    without, _ = edited(tiny_sdxl_engine, frames[:2])
    with_lora, _ = edited(tiny_sdxl_engine, frames[:2], path)
    edited(tiny_sdxl_engine, frames[:2])  # unloads it again for the other tests
    assert (with_lora - without).abs().max() > 1e-3


@pytest.mark.parametrize("text", ["style.safetensors", "style.safetensors:0.7", "C:\\loras\\ink.safetensors:1.5",
                                  "C:\\loras\\ink.safetensors", "someone/ink-lora", "someone/ink-lora:-1",
                                  "dir/with:colon/x.safetensors", " padded.safetensors:2 "])
def test_the_engine_reads_a_lora_as_the_wire_checks_it(text):
    checked = lora_spec.parse_lora(text)
    read = lora.parse_lora(text)
    assert (read.source, read.scale) == (checked.source, checked.scale)


@pytest.mark.parametrize("text, words", [("x.safetensors:99", "outside"), (":0.5", "names no file"),
                                         ("x.safetensors:nan", "outside")])
def test_unreadable_loras_are_refused_with_a_sentence(text, words):
    assert words in (lora_spec.lora_problem(text) or "")
