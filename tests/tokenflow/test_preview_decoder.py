"""Instant previews (tokenflow/preview_decoder.py): with a tiny autoencoder of TAESD's
configuration (random weights, built here; TAESDXL's configuration is the same), keyframe
previews and a preview of every finished frame come from it, all before the full VAE
decodes a frame; the final frames are the full VAE's, unchanged. Each model family takes
its own (TAESD for SD 1.x/2.x, TAESDXL for SDXL) and never the other's; with several
prompts in one pass, every prompt gets its previews."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.make_params import make_params
from tests.tokenflow.helpers import clip_frames
from tokenflow.engine import Engine
from tokenflow.events import FrameReady, Preview
from tokenflow.preview_decoder import make_random_taesd

BASE = make_params(prompt="a watercolor painting", steps=2, short_side=64, kf_interval=3, seed=3, preview_every=1,
                   batch_size=4)
OTHER = {"sd": "sdxl", "sdxl": "sd"}


@pytest.fixture(scope="module")
def taesd_dir(tmp_path_factory):
    return make_random_taesd(tmp_path_factory.mktemp("taesd"))


@pytest.fixture(scope="module")
def taesdxl_dir(tmp_path_factory):
    return make_random_taesd(tmp_path_factory.mktemp("taesdxl"), seed=1)  # TAESDXL's configuration is TAESD's


@pytest.fixture(scope="module")
def frames(shipped_clip):
    return clip_frames(shipped_clip, 30, 6)


def traced_edit(engine: Engine, frames, params) -> tuple[list[str], list]:
    """Edit, recording in one timeline the events and every full-VAE ("full") and
    tiny-autoencoder ("tiny") decode call."""
    assert engine.preview_decoder is not None
    timeline: list[str] = []
    vae, tiny = engine.model.vae, engine.preview_decoder.autoencoder
    full_decode, tiny_decode = vae.decode, tiny.decode
    vae.decode = lambda *a, **k: (timeline.append("full"), full_decode(*a, **k))[1]
    tiny.decode = lambda *a, **k: (timeline.append("tiny"), tiny_decode(*a, **k))[1]
    events: list = []

    def on_event(event) -> None:
        timeline.append(type(event).__name__)
        events.append(event)

    try:
        engine.edit(frames, len(frames), params, on_event=on_event)
    finally:
        del vae.decode, tiny.decode
    return timeline, events


def test_previews_come_from_the_familys_tiny_decoder_before_any_full_decode(family_engine, taesd_dir, taesdxl_dir,
                                                                           frames):
    family = family_engine.model.family.name
    own = {"sd": taesd_dir, "sdxl": taesdxl_dir}[family]
    engine = Engine(loaded=family_engine.model, preview_decoders={"sd": taesd_dir, "sdxl": taesdxl_dir})
    assert engine.preview_decoder is not None and engine.preview_decoder.source == str(own)
    assert engine.preview_decoder_problem == ""
    timeline, events = traced_edit(engine, frames, BASE)
    first_frame = timeline.index("FrameReady")
    assert timeline.index("full") < first_frame
    before_full = timeline[: timeline.index("full")]
    assert "tiny" in before_full and "Preview" in before_full and before_full.count("Preview") == \
        timeline.count("Preview")  # every preview before the full VAE's first decode
    previews = [e for e in events if isinstance(e, Preview)]
    finished = {i for e in previews if e.step == BASE.steps for i in e.frame_indices}
    assert finished == set(range(len(frames)))  # every frame previewed before the full decode
    assert all(img.shape[0] <= 128 for e in previews for img in e.images)
    # The full VAE decoded the final frames only: one call per chunk of batch_size frames.
    assert timeline.count("full") == -(-len(frames) // BASE.batch_size)
    # ... and they are what the engine without a tiny decoder produces.
    plain: list = []
    family_engine.edit(frames, len(frames), BASE, on_event=plain.append)
    ours = [e.image for e in events if isinstance(e, FrameReady)]
    theirs = [e.image for e in plain if isinstance(e, FrameReady)]
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs)) and len(ours) == len(frames)


def test_the_other_familys_tiny_decoder_is_never_used(family_engine, taesd_dir):
    family = family_engine.model.family
    engine = Engine(loaded=family_engine.model, preview_decoders={OTHER[family.name]: taesd_dir})
    assert engine.preview_decoder is None  # its latent space is not this model's
    problem = engine.preview_decoder_problem
    assert str(taesd_dir) in problem and f"models pull {family.preview_repo}" in problem, problem


def test_the_server_says_once_in_its_log_that_the_other_familys_is_not_used(tiny_sdxl_model_dir, taesd_dir,
                                                                            tmp_path, monkeypatch, caplog):
    from server.engine_host import default_factory
    from tests.cli.test_models import fake_hub_repo

    hub = tmp_path / "hub"
    fake_hub_repo(hub, "madebyollin/taesd", taesd_dir)  # TAESD pulled; the model is SDXL
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("server.model_registry._hub_cache", lambda: hub)
    with caplog.at_level("WARNING", logger="tokenflow.server"):
        engine = default_factory("cpu", None)(str(tiny_sdxl_model_dir))
    assert engine.preview_decoder is None
    said = [r.getMessage() for r in caplog.records if "TAESD" in r.getMessage()]
    assert len(said) == 1 and "madebyollin/taesdxl" in said[0], said


def test_a_tiny_decoder_that_does_not_load_leaves_previews_to_the_full_vae(tiny_engine, tmp_path):
    engine = Engine(loaded=tiny_engine.model, preview_decoders={"sd": tmp_path})  # an empty folder
    assert engine.preview_decoder is None and "models pull madebyollin/taesd" in engine.preview_decoder_problem


def test_without_a_tiny_decoder_previews_use_the_full_vae(tiny_engine, frames):
    assert tiny_engine.preview_decoder is None and tiny_engine.preview_decoder_problem == ""
    events: list = []
    tiny_engine.edit(frames[:3], 3, dataclasses.replace(BASE, kf_interval=2), on_event=events.append)
    assert not [e for e in events if isinstance(e, Preview) and e.step == BASE.steps]  # no extra previews


@pytest.mark.parametrize("method", ["tokenflow", "per-frame"])
def test_every_variant_gets_its_previews_before_the_full_decode(tiny_engine, taesd_dir, frames, method):
    params = dataclasses.replace(BASE, method=method, variants=("a snowy night",))
    engine = Engine(loaded=tiny_engine.model, preview_decoders={"sd": taesd_dir})
    timeline, events = traced_edit(engine, frames, params)
    previews = [e for e in events if isinstance(e, Preview)]
    assert "Preview" not in timeline[timeline.index("full"):]  # every variant's previews before the full decode
    for variant in (0, 1):
        mine = [e for e in previews if e.variant == variant]
        assert {e.step for e in mine} == set(range(params.steps + 1)), (variant, [e.step for e in mine])
        finished = {i for e in mine if e.step == params.steps for i in e.frame_indices}
        assert finished == set(range(len(frames)))
    # Each prompt's keyframe previews show its own edit: the two differ.
    first = {e.variant: e.images[0] for e in previews if e.step == 0}
    assert not np.array_equal(first[0], first[1])
    # The final frames, bit for bit, with previews from the tiny decoder or (without one) the full VAE.
    plain: list = []
    tiny_engine.edit(frames, len(frames), params, on_event=plain.append)
    ours = [(e.variant, e.index, e.image) for e in events if isinstance(e, FrameReady)]
    theirs = [(e.variant, e.index, e.image) for e in plain if isinstance(e, FrameReady)]
    assert len(ours) == 2 * len(frames) == len(theirs)
    assert all(a[:2] == b[:2] and np.array_equal(a[2], b[2]) for a, b in zip(ours, theirs))
    # Without the tiny decoder every variant still gets its keyframe previews (from the full VAE).
    assert {e.variant for e in plain if isinstance(e, Preview)} == {0, 1}
