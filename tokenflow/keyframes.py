"""Keyframe choice, their neighbours, and bounded attention groups. Pure functions."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch


def sample_keyframes(n_frames: int, interval: int, generator: torch.Generator) -> list[int]:
    """One keyframe drawn uniformly inside each consecutive group of `interval` frames.

    Redrawn every denoising step: fixed keyframes leave visible seams (paper's ablation).
    """
    keyframes = []
    for start in range(0, n_frames, interval):
        size = min(interval, n_frames - start)
        keyframes.append(start + int(torch.randint(size, (1,), generator=generator)))
    return keyframes


@dataclass(frozen=True)
class Neighbours:
    """Where a frame takes its tokens from: keyframes before/after and the weight of `before`."""

    before: int  # frame index of a keyframe
    after: int  # frame index of a keyframe (== before at the clip's ends)
    weight_before: float


def neighbours(frame: int, keyframes: list[int]) -> Neighbours:
    """The true keyframe just before and just after `frame`, weighted linearly by distance."""
    position = bisect.bisect_left(keyframes, frame)
    if position < len(keyframes) and keyframes[position] == frame:
        return Neighbours(frame, frame, 1.0)
    if position == 0:
        return Neighbours(keyframes[0], keyframes[0], 1.0)
    if position == len(keyframes):
        return Neighbours(keyframes[-1], keyframes[-1], 1.0)
    before, after = keyframes[position - 1], keyframes[position]
    return Neighbours(before, after, 1.0 - (frame - before) / (after - before))


# Keyframe tokens at the finest attention level (h/8 x w/8 latent pixels) that attend
# jointly in one group. On a GPU with flash / memory-efficient SDPA the cost is time, not
# memory: 96k tokens = 24 keyframes at 512x512, so clips up to ~190 frames (kf_interval 8)
# get the paper's full joint attention. On a CPU joint attention is slow: 6 at 512x512.
GPU_TOKEN_BUDGET = 96 * 1024
CPU_TOKEN_BUDGET = 24 * 1024
# Anchors per group past the budget: about a quarter of the group.
ANCHOR_SHARE = 4


def finest_level_tokens(latent_height: int, latent_width: int) -> int:
    return latent_height * latent_width


def auto_max_joint_keyframes(device_type: str, latent_height: int, latent_width: int) -> int:
    """Keyframes that fit the device's token budget at this latent size (at least 2)."""
    # Apple Silicon (mps) keeps the CPU's budget: its attention kernel builds the whole
    # attention matrix (no flash kernel), in memory the CPU shares.
    budget = GPU_TOKEN_BUDGET if device_type == "cuda" else CPU_TOKEN_BUDGET
    return max(2, budget // finest_level_tokens(latent_height, latent_width))


def resolve_max_joint_keyframes(requested: int, device_type: str, latent_height: int, latent_width: int) -> int:
    """`requested`, or the device's auto default when it is 0."""
    return requested if requested > 0 else auto_max_joint_keyframes(device_type, latent_height, latent_width)


@dataclass(frozen=True)
class KeyframeGroup:
    """Keyframes processed in one joint pass: `owned` are kept, `anchors` only lend context."""

    owned: tuple[int, ...]
    anchors: tuple[int, ...]

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.owned + self.anchors))


def plan_groups(keyframes: list[int], max_joint: int, generator: torch.Generator) -> list[KeyframeGroup]:
    """This step's joint-attention groups over the (sorted) keyframes.

    While they fit (`len(keyframes) <= max_joint`): one group, every keyframe attends to
    every keyframe (the paper), and nothing is drawn from `generator`.

    Past it: consecutive runs of `max_joint - max_joint // 4` owned keyframes, the first
    run's length drawn at random, so the boundaries (where the look could drift) sit in
    other frames every step; each group adds `max_joint // 4` anchors spread evenly over
    the rest of the clip at a random phase, so it sees the clip's overall look. Groups
    have at most `max_joint` members (the first and last runs may be shorter: padding
    them would cost attention quadratic in the group size for nothing). Time and memory
    per step are linear in clip length.
    """
    if len(keyframes) <= max_joint:
        return [KeyframeGroup(tuple(keyframes), ())]
    if max_joint < 2:
        raise ValueError("joint attention groups need at least 2 keyframes")
    n_anchors = max(1, max_joint // ANCHOR_SHARE)
    run = max_joint - n_anchors
    first = 1 + int(torch.randint(run, (1,), generator=generator))
    phase = float(torch.rand(1, generator=generator, dtype=torch.float64))
    starts = [0, *range(first, len(keyframes), run)]
    groups = []
    for start, end in zip(starts, [*starts[1:], len(keyframes)]):
        owned = keyframes[start:end]
        others = keyframes[:start] + keyframes[end:]
        anchors = [others[int((phase + i) * len(others) / n_anchors)] for i in range(n_anchors)]
        groups.append(KeyframeGroup(tuple(owned), tuple(anchors)))
    return groups
