"""DDIM inversion and sampling are exact inverses on one schedule."""

from __future__ import annotations

import torch

from tokenflow import ddim
from tokenflow.attention import TokenFlowState
from tokenflow.editor import invert
from tokenflow.stats import EditStats
from tokenflow.tiny import _sd_scheduler


class XIndependentDenoiser(torch.nn.Module):
    """Predicts noise from t alone, so DDIM's two directions must undo each other exactly."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64), requires_grad=False)
        generator = torch.Generator().manual_seed(0)
        self.pattern = torch.randn(1, 4, 8, 8, generator=generator, dtype=torch.float64)

    @property
    def device(self):
        return self.anchor.device

    @property
    def dtype(self):
        return torch.float64

    def forward(self, x, t, encoder_hidden_states=None):
        eps = self.pattern * torch.cos(torch.tensor(float(t)) / 97.0) + 0.01 * float(t) / 1000
        return type("Out", (), {"sample": eps.expand_as(x).to(x.dtype)})()


def _sample(latent: torch.Tensor, schedule: ddim.Schedule, unet) -> torch.Tensor:
    x = latent
    for index, t in enumerate(schedule.timesteps):
        eps = unet(x, t).sample
        x = ddim.sampling_step(x, eps, schedule.alpha(t), schedule.previous_alpha(index))
    return x


def _round_trip_error(steps: int) -> float:
    unet = XIndependentDenoiser()
    schedule = ddim.make_schedule(_sd_scheduler(), steps)
    clean = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    state = TokenFlowState(sites=None)  # inversion uses plain attention; no sites needed
    inverted = invert(unet, clean, schedule, torch.zeros(1, 77, 8), 2, state, EditStats(), lambda: False)
    # The editor starts from the latent at the first sampling timestep.
    restored = _sample(inverted[schedule.timesteps[0]].double(), schedule, unet)
    return float((restored - clean).norm() / clean.norm())


def test_inversion_then_sampling_returns_the_input():
    for steps in (5, 50):
        assert _round_trip_error(steps) < 1e-5


def test_every_sampling_timestep_has_an_inverted_latent():
    schedule = ddim.make_schedule(_sd_scheduler(), 10)
    inverted = invert(XIndependentDenoiser(), torch.zeros(2, 4, 8, 8, dtype=torch.float64), schedule,
                      torch.zeros(1, 77, 8), 8, TokenFlowState(sites=None), stats := EditStats(), lambda: False)
    assert sorted(inverted) == sorted(schedule.timesteps)
    assert stats.unet_passes["inversion"] == 2 * 10  # one pass per frame and step, no reconstruction


def test_padded_inversion_batches_give_the_same_latents():
    schedule = ddim.make_schedule(_sd_scheduler(), 4)
    clean = torch.randn(5, 4, 8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    args = (XIndependentDenoiser(), clean, schedule, torch.zeros(1, 77, 8), 3, TokenFlowState(sites=None))
    plain = invert(*args, EditStats(), lambda: False)
    padded = invert(*args, stats := EditStats(), lambda: False, pad_batches=True)
    assert all(torch.equal(plain[t], padded[t]) for t in schedule.timesteps)
    assert stats.unet_passes["inversion"] == 5 * 4  # padding is not counted as work


def test_misaligned_timesteps_break_the_round_trip():
    """The check above is sensitive: shifting the inversion's alphas by one step shows at once."""
    unet = XIndependentDenoiser()
    schedule = ddim.make_schedule(_sd_scheduler(), 10)
    clean = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x, alpha_prev = clean, schedule.final_alpha
    for t in reversed(schedule.timesteps):
        eps = unet(x, t - 1).sample  # off by one timestep
        x = ddim.inversion_step(x, eps, alpha_prev, schedule.alpha(t))
        alpha_prev = schedule.alpha(t)
    restored = _sample(x, schedule, unet)
    assert float((restored - clean).norm() / clean.norm()) > 1e-4


def test_v_prediction_converts_to_epsilon():
    alpha = 0.7
    x0 = torch.randn(4)
    eps = torch.randn(4)
    x_t = alpha**0.5 * x0 + (1 - alpha) ** 0.5 * eps
    v = alpha**0.5 * eps - (1 - alpha) ** 0.5 * x0
    assert torch.allclose(ddim.to_epsilon(v, x_t, alpha, "v_prediction"), eps, atol=1e-6)
