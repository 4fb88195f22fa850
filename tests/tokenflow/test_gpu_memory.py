"""The GPU-memory estimate at submit: grows with what the job asks for, refuses with numbers and what to lower."""

from __future__ import annotations

from tokenflow.gpu_memory import estimate, job_problem, problem


def test_the_estimate_grows_with_frames_size_batch_and_joint_keyframes(tiny_engine):
    model = tiny_engine.model
    base = estimate(model, (512, 512), 40, 50, 8, 8)
    assert base.weights == sum(p.numel() * p.element_size() for m in (model.unet, model.vae, model.text_encoder)
                               for p in m.parameters())
    assert estimate(model, (512, 512), 80, 50, 8, 8).total > base.total
    assert estimate(model, (768, 512), 40, 50, 8, 8).total > base.total
    assert estimate(model, (512, 512), 40, 50, 16, 8).unet_pass > base.unet_pass
    assert estimate(model, (512, 512), 40, 50, 8, 24).unet_pass > base.unet_pass
    two_more = estimate(model, (512, 512), 40, 50, 8, 8, variants=2)  # three prompts in one pass
    assert two_more.latents > base.latents and two_more.unet_pass > base.unet_pass
    assert two_more.latents < 3 * base.latents  # the inverted latents are shared, not tripled
    assert estimate(model, (512, 512), 40, 50, 16, 8).vae_decode > base.vae_decode


def test_a_job_too_big_for_the_card_is_refused_with_the_numbers_and_what_to_lower(tiny_engine):
    needs = estimate(tiny_engine.model, (512, 896), 400, 50, 8, 0)
    assert problem(needs, 400, 1 << 40) is None
    card = needs.total // 2
    sentence = problem(needs, 400, card)
    assert sentence is not None
    assert "GiB of GPU memory" in sentence and "400 frames" in sentence
    assert "fewer frames (about" in sentence and "--batch-size" in sentence and "--size" in sentence
    fits = int(sentence.split("about ")[2].split(" fit")[0])
    assert 0 < fits < 400
    assert problem(estimate(tiny_engine.model, (512, 896), fits, 50, 8, 0), fits, card) is None


def test_on_a_cpu_the_gpu_check_does_not_apply(tiny_engine):
    assert job_problem(tiny_engine.model, (4096, 4096), 100000, 50, 8) is None
