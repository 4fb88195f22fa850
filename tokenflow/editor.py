"""The two loops of the method: DDIM inversion and the TokenFlow / per-frame edit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from tokenflow import ddim
from tokenflow.attention import EDIT, EDITED, KEYFRAMES, PER_FRAME, PLAIN, PROPAGATE, SOURCE, PlanIndex, TokenFlowState
from tokenflow.errors import NonFiniteValues
from tokenflow.events import Cancelled
from tokenflow.keyframes import KeyframeGroup, neighbours, plan_groups, resolve_max_joint_keyframes, sample_keyframes
from tokenflow.matte import blend
from tokenflow.params import EditParams
from tokenflow.sdxl import Added, added_kwargs
from tokenflow.sites import attention_stride
from tokenflow.stats import EditStats


@dataclass
class Conditioning:
    source: torch.Tensor  # (1, 77, D) inversion prompt
    negative: torch.Tensor
    prompt: torch.Tensor
    # More prompts edited in the same pass (variants), sharing the source branch.
    variants: tuple[torch.Tensor, ...] = ()
    # SDXL's extra UNet inputs per branch, (source, negative, prompt, *variants); None for SD 1.x/2.x.
    added: tuple[Added, ...] | None = None

    @property
    def prompts(self) -> list[torch.Tensor]:
        return [self.prompt, *self.variants]

    def source_added(self) -> tuple[Added] | None:
        """The source branch's extra UNet inputs (the inversion prompt's)."""
        return None if self.added is None else (self.added[0],)

    def edit_added(self, variant: int) -> tuple[Added, Added] | None:
        """One variant's [uncond | cond] call's extra UNet inputs (the negative's, the prompt's)."""
        return None if self.added is None else (self.added[1], self.added[2 + variant])


def _batches(items: list[int], size: int) -> list[list[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _padded(batch: list[int], size: int, pad: bool) -> list[int]:
    """`batch` filled up to `size` by repeating its last frame (whose extra results are
    dropped), so that compiled blocks see one shape; unchanged when `pad` is off."""
    return batch + [batch[-1]] * (size - len(batch)) if pad else batch


def device_index(values: list[int], device: torch.device) -> torch.Tensor | slice:
    """An index for `values` on `device`: a slice when they are a contiguous run, else a
    tensor copied from pinned memory without waiting for the GPU (indexing a CUDA tensor
    with a Python list copies it from pageable memory, which synchronises the stream)."""
    if values and values == list(range(values[0], values[-1] + 1)):
        return slice(values[0], values[-1] + 1)
    index = torch.tensor(values, dtype=torch.long)
    if device.type == "cuda":
        return index.pin_memory().to(device, non_blocking=True)
    return index


def _check_cancel(should_cancel: Callable[[], bool]) -> None:
    if should_cancel():
        raise Cancelled()


@torch.no_grad()
def invert(
    unet,
    latents: torch.Tensor,
    schedule: ddim.Schedule,
    condition: torch.Tensor,
    batch_size: int,
    state: TokenFlowState,
    stats: EditStats,
    should_cancel: Callable[[], bool],
    on_step: Callable[[int, int], None] | None = None,
    pad_batches: bool = False,
    added: Added | None = None,
) -> dict[int, torch.Tensor]:
    """DDIM-invert (N, 4, h, w) latents; returns x_t on the UNet's device for every sampling timestep t.

    No guidance, one conditional pass per frame and step, on exactly the sampling
    schedule, so every latent saved is one the editor consumes.
    """
    device, dtype = unet.device, unet.dtype
    ascending = list(reversed(schedule.timesteps))
    stored: dict[int, list[torch.Tensor]] = {t: [] for t in ascending}
    state.mode = PLAIN
    total = len(ascending) * latents.shape[0]
    done = 0
    finite = torch.ones((), dtype=torch.bool, device=device)
    for frames in _batches(list(range(latents.shape[0])), batch_size):
        real = len(frames)
        frames = _padded(frames, batch_size, pad_batches)
        x = latents[frames].to(device, torch.float32)
        cond = condition.expand(len(frames), -1, -1)
        alpha_prev = schedule.final_alpha
        for t in ascending:
            _check_cancel(should_cancel)
            extra = added_kwargs(None if added is None else (added,), len(frames))
            output = unet(x.to(dtype), t, encoder_hidden_states=cond, **extra).sample.float()
            stats.count("inversion", real)
            alpha_t = schedule.alpha(t)
            # The UNet is told x is at level t (the public rule), so read its output at t.
            eps = ddim.to_epsilon(output, x, alpha_t, schedule.prediction_type)
            x = ddim.inversion_step(x, eps, alpha_prev, alpha_t)
            alpha_prev = alpha_t
            stored[t].append(x[:real])  # stays on the device: no copy back, no synchronisation per step
            done += real
            if on_step:
                on_step(done, total)
        finite &= torch.isfinite(x).all()
    if not bool(finite):  # the one synchronisation, once all frames are inverted
        raise NonFiniteValues("DDIM inversion produced NaN or infinite values: try --device cpu, or another model.")
    return {t: torch.cat(parts) for t, parts in stored.items()}


class EditLoop:
    """Runs the denoising loop over all frames, TokenFlow or per-frame."""

    def __init__(
        self,
        unet,
        schedule: ddim.Schedule,
        inverted: dict[int, torch.Tensor],
        conditioning: Conditioning,
        params: EditParams,
        state: TokenFlowState,
        stats: EditStats,
        should_cancel: Callable[[], bool],
        on_keyframes: Callable[[int, list[int], torch.Tensor, int], None] | None = None,
        on_step: Callable[[int, int, int], None] | None = None,
        previewed_first_step: bool = False,
        pad_batches: bool = False,
        latent_matte: torch.Tensor | None = None,
    ):
        self.unet = unet
        # (N, 1, h, w) in [0, 1]: outside it the latents follow the source's inversion (matte.py).
        self.latent_matte = None if latent_matte is None else latent_matte.to(unet.device, torch.float32)
        self.schedule = schedule
        # On the device once, in fp32: every UNet call reads its source branch from here.
        self.inverted = {t: x.to(unet.device, torch.float32) for t, x in inverted.items()}
        self.conditioning = conditioning
        self.params = params
        self.state = state
        self.stats = stats
        self.should_cancel = should_cancel
        self.on_keyframes = on_keyframes  # (step, frames, predicted clean latents, variant), once per variant
        self.on_step = on_step  # (step, frames_done, frames_total)
        self.n_frames = inverted[schedule.timesteps[0]].shape[0]
        self.generator = torch.Generator().manual_seed(params.seed)
        latent_h, latent_w = inverted[schedule.timesteps[0]].shape[-2:]
        stride = attention_stride(unet)  # the token budget counts the finest attention level's tokens
        self.max_joint = resolve_max_joint_keyframes(params.max_joint_keyframes, unet.device.type, latent_h // stride,
                                                     latent_w // stride)
        stats.max_joint_keyframes = self.max_joint
        self.keyframe_history: list[list[int]] = []
        self.group_history: list[list[KeyframeGroup]] = []
        self.previewed_first_step = previewed_first_step
        self.pad_batches = pad_batches
        # UNet frame-evaluations per frame: the source branch once, two per variant.
        self.branches = 1 + EDITED * len(conditioning.prompts)

    def _unet_eps(self, frames: list[int], latents: list[torch.Tensor], t: int, step_alpha: float,
                  index: torch.Tensor | slice | None = None) -> list[torch.Tensor]:
        """Guided noise estimates for `frames`, one per variant (`latents[v]` its current
        latents): one UNet call over the source branch, then one over [uncond | cond] per variant."""
        dtype = self.unet.dtype
        index = device_index(frames, latents[0].device) if index is None else index
        c, state = self.conditioning, self.state
        b = len(frames)
        state.frames = list(frames)
        state.recorded.clear()
        state.role = SOURCE
        self.unet(self.inverted[t][index].to(dtype), t, encoder_hidden_states=c.source.expand(b, -1, -1),
                  **added_kwargs(c.source_added(), b))
        estimates = []
        state.role = EDIT
        for variant, (variant_latents, prompt) in enumerate(zip(latents, c.prompts)):
            state.variant = variant
            current = variant_latents[index]
            text = torch.cat([c.negative.expand(b, -1, -1), prompt.expand(b, -1, -1)])
            output = self.unet(torch.cat([current, current]).to(dtype), t, encoder_hidden_states=text,
                               **added_kwargs(c.edit_added(variant), b)).sample.float()
            uncond, cond = output.chunk(EDITED)
            uncond = ddim.to_epsilon(uncond, current, step_alpha, self.schedule.prediction_type)
            cond = ddim.to_epsilon(cond, current, step_alpha, self.schedule.prediction_type)
            estimates.append(uncond + self.params.guidance * (cond - uncond))
        state.role, state.variant = SOURCE, 0
        state.recorded.clear()
        return estimates

    def run(self) -> torch.Tensor:
        """The edited latents of the (first) prompt."""
        return self.run_all()[0]

    @torch.no_grad()
    def run_all(self) -> list[torch.Tensor]:
        """The edited latents of every prompt (conditioning.prompts), in one pass."""
        schedule, params = self.schedule, self.params
        start = self.inverted[schedule.timesteps[0]]
        latents = [start.clone() for _ in self.conditioning.prompts]
        steps = len(schedule.timesteps)
        finite = torch.ones((), dtype=torch.bool, device=start.device)
        for index, t in enumerate(schedule.timesteps):
            _check_cancel(self.should_cancel)
            self.state.inject_attention = index < injection_steps(params.pnp_attn_t, steps)
            self.state.inject_conv = index < injection_steps(params.pnp_f_t, steps)
            alpha_t, alpha_prev = schedule.alpha(t), schedule.previous_alpha(index)
            if params.method == "per-frame":
                eps = self._per_frame_step(latents, t, alpha_t, index)
            else:
                eps = self._tokenflow_step(latents, t, alpha_t, index)
            for variant, variant_eps in enumerate(eps):
                stepped = ddim.sampling_step(latents[variant], variant_eps, alpha_t, alpha_prev)
                if self.latent_matte is not None and index + 1 < steps:
                    stepped = blend(stepped, self.inverted[schedule.timesteps[index + 1]], self.latent_matte)
                latents[variant] = stepped
                finite &= torch.isfinite(stepped).all()  # checked on the device: no synchronisation per step
        if not bool(finite):
            raise NonFiniteValues(
                "Denoising produced NaN or infinite values: the model may not run in fp16 on this GPU; "
                "try --device cpu, a lower --guidance, or another model."
            )
        return latents

    def _per_frame_step(self, latents: list[torch.Tensor], t: int, alpha_t: float, index: int) -> list[torch.Tensor]:
        eps = [torch.empty_like(x) for x in latents]
        self.state.mode = PER_FRAME
        done = 0
        for frames in _batches(list(range(self.n_frames)), self.params.batch_size):
            _check_cancel(self.should_cancel)
            where = device_index(frames, latents[0].device)
            estimates = self._unet_eps(_padded(frames, self.params.batch_size, self.pad_batches), latents, t, alpha_t)
            for variant_eps, estimate in zip(eps, estimates):
                variant_eps[where] = estimate[: len(frames)]
            self.stats.count("per_frame", self.branches * len(frames))
            wants_preview = index % self.params.preview_every == 0 and not (index == 0 and self.previewed_first_step)
            if wants_preview and done == 0 and self.on_keyframes:
                for variant, (variant_latents, variant_eps) in enumerate(zip(latents, eps)):
                    clean = ddim.predict_clean(variant_latents[where], variant_eps[where], alpha_t)
                    self.on_keyframes(index, frames, clean, variant)
            done += len(frames)
            if self.on_step:
                self.on_step(index, done, self.n_frames)
        return eps

    def _tokenflow_step(self, latents: list[torch.Tensor], t: int, alpha_t: float, index: int) -> list[torch.Tensor]:
        params, state = self.params, self.state
        keyframes = sample_keyframes(self.n_frames, params.kf_interval, self.generator)
        self.keyframe_history.append(keyframes)
        keyframe_set = set(keyframes)
        others = [f for f in range(self.n_frames) if f not in keyframe_set]
        eps = [torch.empty_like(x) for x in latents]
        device = latents[0].device
        groups = plan_groups(keyframes, self.max_joint, self.generator)
        self.group_history.append(groups)
        carried: int | None = None  # last keyframe of the previous group, still needed
        done = 0
        for number, group in enumerate(groups):
            _check_cancel(self.should_cancel)
            state.drop_caches(keep={carried} if carried is not None else set())
            members = list(group.members)
            owned = list(group.owned)
            state.mode = KEYFRAMES
            state.cache_frames = set(owned)
            where = device_index(members, device)
            group_eps = self._unet_eps(members, latents, t, alpha_t, where)
            self.stats.count("keyframes", self.branches * len(members))
            for variant_eps, estimate in zip(eps, group_eps):
                if group.anchors:
                    positions = device_index([members.index(f) for f in owned], device)
                    variant_eps[device_index(owned, device)] = estimate[positions]
                else:
                    variant_eps[where] = estimate
            done += len(owned)
            wants_preview = index % params.preview_every == 0 and not (index == 0 and self.previewed_first_step)
            if number == 0 and wants_preview and self.on_keyframes:
                # All members: anchors' estimates are not kept, but they preview the edit as well.
                for variant, (variant_latents, estimate) in enumerate(zip(latents, group_eps)):
                    self.on_keyframes(index, members, ddim.predict_clean(variant_latents[where], estimate, alpha_t),
                                      variant)

            # Frames whose keyframe-after is in this group (or, past the last keyframe,
            # whose keyframe-before is): both their neighbours' caches are now present.
            low = owned[0] if carried is None else carried
            high = owned[-1]
            is_first, is_last = number == 0, number == len(groups) - 1
            span = [
                f for f in others
                if (low < f < high) or (is_first and f < low) or (is_last and f > high)
            ]
            done += self._propagate(span, latents, t, alpha_t, keyframes, eps)
            if self.on_step:
                self.on_step(index, done, self.n_frames)
            carried = high
        state.drop_caches(keep=set())
        return eps

    def _propagate(self, frames: list[int], latents: list[torch.Tensor], t, alpha_t, keyframes,
                   eps: list[torch.Tensor]) -> int:
        if not frames:
            return 0
        state = self.state
        for batch in _batches(frames, self.params.batch_size):
            _check_cancel(self.should_cancel)
            padded = _padded(batch, self.params.batch_size, self.pad_batches)
            if self.params.propagate:
                state.mode = PROPAGATE
                state.plan = [neighbours(f, keyframes) for f in padded]
                state.plan_index = PlanIndex.build(state.plan, self.unet.device)
                self.stats.count("propagation", self.branches * len(batch))
            else:
                state.mode = PER_FRAME
                self.stats.count("per_frame", self.branches * len(batch))
            where = device_index(batch, latents[0].device)
            estimates = self._unet_eps(padded, latents, t, alpha_t, where if padded is batch else None)
            for variant_eps, estimate in zip(eps, estimates):
                variant_eps[where] = estimate[: len(batch)]
        state.plan, state.plan_index = [], None
        return len(frames)


def injection_steps(fraction: float, steps: int) -> int:
    """Steps (from the first) with PnP injection on: the public code's `int(fraction * steps)`."""
    return int(fraction * steps)


def first_preview_frames(params: EditParams, n_frames: int, max_joint: int) -> list[int]:
    """The frames the first preview needs and shows: the first keyframe group's members at
    step 0 (per-frame: the first batch).

    The keyframe draw is seeded, so these are known before anything runs: inverting
    them first lets a cold job show the edit long before the whole clip is inverted.
    """
    if params.method == "per-frame":
        return list(range(min(n_frames, params.batch_size)))
    generator = torch.Generator().manual_seed(params.seed)  # the edit loop's first draws, replayed
    keyframes = sample_keyframes(n_frames, params.kf_interval, generator)
    return list(plan_groups(keyframes, max_joint, generator)[0].members)


@torch.no_grad()
def preview_first_step(loop: EditLoop, frame_ids: list[int]) -> None:
    """Run the first step's joint keyframe pass on `loop`'s frames (the first group) and
    report their predicted clean frames: exactly what step 0 of the full edit computes for
    that group, available as soon as those frames alone are inverted."""
    schedule, state = loop.schedule, loop.state
    t = schedule.timesteps[0]
    alpha_t = schedule.alpha(t)
    latents = loop.inverted[t]
    members = list(range(len(frame_ids)))
    steps = len(schedule.timesteps)
    state.inject_attention = 0 < injection_steps(loop.params.pnp_attn_t, steps)
    state.inject_conv = 0 < injection_steps(loop.params.pnp_f_t, steps)
    state.mode = KEYFRAMES if loop.params.method == "tokenflow" else PER_FRAME
    state.cache_frames = set()
    # Every prompt's, as step 0 of the edit computes them (all start from the same inverted latents).
    estimates = loop._unet_eps(members, [latents] * len(loop.conditioning.prompts), t, alpha_t)
    loop.stats.count("preview", loop.branches * len(members))
    if loop.on_keyframes:
        for variant, eps in enumerate(estimates):
            loop.on_keyframes(0, list(frame_ids), ddim.predict_clean(latents, eps, alpha_t), variant)
