"""Will a job fit in the GPU's memory? An estimate from the model's shape and the job's sizes,
so a job that cannot fit is refused when it is submitted, with the numbers and what to
lower, instead of failing with out-of-memory half way through.

What the engine holds on the device (tokenflow/engine.py, tokenflow/editor.py):
- the weights (UNet, VAE, text encoder), measured from the loaded model;
- while reading: every frame at the working size (fp16 on a GPU);
- while editing: the inverted latents of every sampling step and the running latents,
  noise estimates and their copies (float32), plus one UNet call's activations: three
  branches of `max(batch size, joint keyframes)` rows, and the keyframes' cached features;
  each extra prompt of a several-prompt edit (`variants`) adds its own running latents,
  noise estimates and copies, and its two branches' cached keyframe features;
- while decoding: the latents, plus one VAE decoder call over `batch size` frames.
The peak is the weights plus the largest stage. Activation sizes are rules of thumb per
row (the first block's channels times the tokens), generous on purpose; calibrate them
against `stats.peak_memory_bytes` of real jobs on a GPU (not measured here: no GPU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tokenflow.keyframes import resolve_max_joint_keyframes

# Bytes of live activations per UNet batch row, in units of (first block channels x latent tokens x dtype bytes).
UNET_ROW_FACTOR = 48
# Features a keyframe leaves cached for propagation, same units.
KEYFRAME_CACHE_FACTOR = 12
# The VAE decoder's live activations per frame, in units of (first block channels x pixels x dtype bytes).
VAE_DECODE_FACTOR = 8
HEADROOM = 0.92  # of the card's memory: the allocator's fragmentation and the CUDA context take the rest


@dataclass(frozen=True)
class GpuNeeds:
    weights: int
    read: int  # frames at the working size while reading
    latents: int  # inverted latents of every step + the running ones
    unet_pass: int  # one UNet call's activations + keyframe caches
    vae_decode: int  # one decoder call's activations
    per_frame: int  # what one more frame adds to the largest stage

    @property
    def total(self) -> int:
        return self.weights + max(self.read, self.latents + self.unet_pass, self.latents + self.vae_decode)


def _param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _dtype_bytes(module) -> int:
    return next(module.parameters()).element_size()


def estimate(model, working_size: tuple[int, int], n_frames: int, steps: int, batch_size: int,
             max_joint_keyframes: int = 0, variants: int = 0) -> GpuNeeds:
    """`model`: a tokenflow.model.LoadedModel; `working_size` (w, h); `max_joint_keyframes` 0 = the device's default;
    `variants`: prompts edited beside the first in the same pass."""
    w, h = working_size
    tokens = (w // 8) * (h // 8)
    latent = 4 * tokens * 4  # float32
    unet_bytes, vae_bytes = _dtype_bytes(model.unet), _dtype_bytes(model.vae)
    c_unet = int(model.unet.config.block_out_channels[0])
    c_vae = int(model.vae.config.block_out_channels[0])
    joint = resolve_max_joint_keyframes(max_joint_keyframes, "cuda", h // 8, w // 8)
    rows = 3 * max(batch_size, joint)
    # The inverted latents are shared by every prompt; the running latents, noise estimates
    # and their copies (3) are each prompt's own.
    per_latent_frame = latent * (steps + 3 + 3 * variants)
    # The source branch's keyframe features are cached once, each prompt's two branches apart.
    keyframe_cache = joint * KEYFRAME_CACHE_FACTOR * (3 + 2 * variants) // 3
    return GpuNeeds(
        weights=sum(_param_bytes(m) for m in (model.unet, model.vae, model.text_encoder)),
        read=n_frames * 3 * w * h * 2,
        latents=n_frames * per_latent_frame,
        unet_pass=(rows * UNET_ROW_FACTOR + keyframe_cache) * c_unet * tokens * unet_bytes,
        vae_decode=batch_size * VAE_DECODE_FACTOR * c_vae * w * h * vae_bytes,
        per_frame=max(3 * w * h * 2, per_latent_frame),
    )


def problem(needs: GpuNeeds, n_frames: int, device_total: int) -> str | None:
    """A sentence with the numbers and what to lower if the job cannot fit in `device_total` bytes, else None."""
    room = int(device_total * HEADROOM)
    if needs.total <= room:
        return None
    gib = 1 << 30
    fixed = needs.total - n_frames * needs.per_frame
    fits = max(0, (room - fixed) // max(1, needs.per_frame))
    advice = (f"fewer frames (about {fits} fit at these settings)" if fits > 0
              else "a smaller --size (the frames alone do not fit)")
    return (f"This job needs about {needs.total / gib:.1f} GiB of GPU memory but the GPU has {device_total / gib:.1f} GiB "
            f"(weights {needs.weights / gib:.1f} GiB, {n_frames} frames' latents {needs.latents / gib:.1f} GiB, "
            f"one UNet pass {needs.unet_pass / gib:.1f} GiB, one VAE decode {needs.vae_decode / gib:.1f} GiB). "
            f"Lower: {advice}, --batch-size, --max-joint-keyframes, or --size.")


def job_problem(model, working_size: tuple[int, int], n_frames: int, steps: int, batch_size: int,
                max_joint_keyframes: int = 0, variants: int = 0) -> str | None:
    """`problem` for a job on `model`'s device; None on a CPU (host memory is checked elsewhere)."""
    device = model.device
    if device.type != "cuda":
        return None
    total = torch.cuda.get_device_properties(device).total_memory
    needs = estimate(model, working_size, n_frames, steps, batch_size, max_joint_keyframes, variants)
    return problem(needs, n_frames, total)
