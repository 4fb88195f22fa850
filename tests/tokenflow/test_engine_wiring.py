"""The engine's wiring from parameters to the mechanism, observed through `Engine.edit`.

The mechanism tests build their own conditioning and cache keys, so they cannot see an engine
that hands the wrong text to a branch or leaves a parameter out of the inversion cache's key.
These tests watch what the UNet really receives and what the cache really reuses."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow.engine import Engine

TEXTS = {"I": "a photo of a car interior", "N": "blurry, washed out", "P": "a watercolor painting"}
BASE = make_params(prompt=TEXTS["P"], negative_prompt=TEXTS["N"], inversion_prompt=TEXTS["I"], steps=2,
                   short_side=64, kf_interval=2, seed=3)


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 30, 4)


def _embedding(model, text: str) -> torch.Tensor:
    """CLIP's embedding of `text`, computed here from the tokenizer and text encoder, not by the engine."""
    ids = model.tokenizer(text, padding="max_length", max_length=model.tokenizer.model_max_length,
                          truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return model.text_encoder(ids)[0][0].to(model.unet_dtype)


def _which_text(row: torch.Tensor, known: dict[str, torch.Tensor]) -> str:
    return next((label for label, emb in known.items() if torch.equal(row, emb)), "?")


def test_each_branch_gets_its_own_text(tiny_engine, frames):
    """Inversion sees the inversion prompt; each batch of the edit is the source branch's call
    [inversion prompt] then the guided call [unconditional | edit] = [negative prompt | prompt],
    one row per frame, in that order (tokenflow/attention.py: the source branch is shared by
    every prompt of a pass)."""
    model = tiny_engine.model
    known = {label: _embedding(model, text) for label, text in TEXTS.items()}
    values = list(known.values())
    assert not any(torch.equal(a, b) for i, a in enumerate(values) for b in values[i + 1:])  # the texts differ
    calls: list[str] = []

    def record(_module, args, kwargs):
        states = kwargs.get("encoder_hidden_states", args[2] if len(args) > 2 else None)
        calls.append("".join(_which_text(row, known) for row in states))

    handle = model.unet.register_forward_pre_hook(record, with_kwargs=True)
    try:
        tiny_engine.edit(frames, len(frames), BASE, on_event=lambda e: None)
    finally:
        handle.remove()
    assert calls and "?" not in "".join(calls), calls
    guided = [c for c in calls if set(c) != {"I"}]
    assert guided, "no call carried the negative and edit prompts"
    for position, call in enumerate(calls):
        if call in guided:
            n = len(call) // 2
            assert call == "N" * n + "P" * n, call
            assert calls[position - 1] == "I" * n, calls[position - 1]  # its source call, just before
    assert any(set(c) == {"I"} for c in calls)  # the inversion's own calls


@pytest.mark.parametrize("change", [
    {"inversion_prompt": "a photo of a street"},
    {"steps": 3},
    {"short_side": 96},
], ids=lambda c: next(iter(c)))
def test_every_input_of_the_inversion_is_in_its_cache_key(tiny_model_dir, frames, tmp_path, change):
    """A re-edit that changes what the inversion depends on runs a new inversion (and works);
    the original parameters still hit their own entry."""
    engine = Engine(str(tiny_model_dir), device="cpu", cache_dir=tmp_path)
    first = engine.edit(frames, len(frames), BASE, on_event=lambda e: None)
    assert not first.inversion_cached
    changed = engine.edit(frames, len(frames), dataclasses.replace(BASE, **change), on_event=lambda e: None)
    assert not changed.inversion_cached and changed.unet_passes.get("inversion", 0) > 0
    again = engine.edit(frames, len(frames), dataclasses.replace(BASE, prompt="pencil"), on_event=lambda e: None)
    assert again.inversion_cached


def test_more_steps_than_the_scheduler_has_is_a_clear_refusal(tiny_engine, frames):
    """--steps 1000 (inside the wire's range) used to crash the job with an IndexError."""
    from tokenflow.errors import InvalidInput

    scheduler = tiny_engine.model.scheduler
    most = len(scheduler.alphas_cumprod) - int(scheduler.config.get("steps_offset", 0) or 0)
    with pytest.raises(InvalidInput, match=f"--steps {most} or fewer"):
        tiny_engine.edit(frames, len(frames), dataclasses.replace(BASE, steps=most + 1), on_event=lambda e: None)
