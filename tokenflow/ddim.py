"""Deterministic DDIM on one schedule, both directions.

Inversion and sampling share the sampling schedule exactly (ALGORITHM.md, stage 3):
every inverted latent saved is one the editor uses, and with a denoiser whose
prediction ignores x the two directions are exact inverses of each other.
The schedule and alphas come from diffusers' DDIMScheduler; the two update rules
live here so that they are visibly each other's inverse.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokenflow.errors import InvalidInput


@dataclass(frozen=True)
class Schedule:
    timesteps: tuple[int, ...]  # sampling order: high noise -> low noise
    alphas_cumprod: torch.Tensor  # float64, indexed by train timestep
    final_alpha: float  # alpha "after" the last sampling step
    prediction_type: str

    def alpha(self, t: int) -> float:
        return float(self.alphas_cumprod[t])

    def previous_alpha(self, index: int) -> float:
        """Alpha of the level the sampling step at `index` lands on."""
        if index + 1 < len(self.timesteps):
            return self.alpha(self.timesteps[index + 1])
        return self.final_alpha


def make_schedule(scheduler, steps: int) -> Schedule:
    alphas = scheduler.alphas_cumprod.to(torch.float64)
    # DDIM's "leading" spacing shifts every timestep by `steps_offset` (SD's configs: 1), so
    # as many steps as training timesteps would ask for timestep 1000 of 0..999.
    most = len(alphas) - int(scheduler.config.get("steps_offset", 0) or 0)
    if steps > most:
        raise InvalidInput(f"{steps} denoising steps are more than this model's scheduler has "
                           f"({most} at most): use --steps {most} or fewer (50 is the usual choice).")
    scheduler.set_timesteps(steps)
    timesteps = tuple(int(t) for t in scheduler.timesteps)
    return Schedule(
        timesteps=timesteps,
        alphas_cumprod=alphas,
        final_alpha=float(scheduler.final_alpha_cumprod),
        prediction_type=str(scheduler.config.get("prediction_type", "epsilon")),
    )


def to_epsilon(output: torch.Tensor, sample: torch.Tensor, alpha: float, prediction_type: str) -> torch.Tensor:
    """The model's output as a noise estimate (v-prediction converted)."""
    if prediction_type == "epsilon":
        return output
    if prediction_type == "v_prediction":
        return alpha**0.5 * output + (1 - alpha) ** 0.5 * sample
    raise ValueError(f"unsupported prediction type {prediction_type!r}")


def predict_clean(sample: torch.Tensor, eps: torch.Tensor, alpha: float) -> torch.Tensor:
    return (sample - (1 - alpha) ** 0.5 * eps) / alpha**0.5


def move_to_level(clean: torch.Tensor, eps: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha**0.5 * clean + (1 - alpha) ** 0.5 * eps


def sampling_step(sample: torch.Tensor, eps: torch.Tensor, alpha_t: float, alpha_prev: float) -> torch.Tensor:
    """x_t -> x_{t_prev}, eta = 0."""
    return move_to_level(predict_clean(sample, eps, alpha_t), eps, alpha_prev)


def inversion_step(sample: torch.Tensor, eps: torch.Tensor, alpha_prev: float, alpha_t: float) -> torch.Tensor:
    """x_{t_prev} -> x_t with eps = model(x_{t_prev}, t): the sampling step solved backwards."""
    return move_to_level(predict_clean(sample, eps, alpha_prev), eps, alpha_t)
