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


@dataclass(frozen=True)
class KeyframeGroup:
    """Keyframes processed in one joint pass: `owned` are kept, `anchors` only lend context."""

    owned: tuple[int, ...]
    anchors: tuple[int, ...]

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(sorted(self.owned + self.anchors))


def keyframe_groups(keyframes: list[int], max_attended: int) -> list[KeyframeGroup]:
    """Split keyframes into joint-attention groups of at most `max_attended` members.

    Short clips: one group, every keyframe attends to every keyframe (the paper).
    Long clips: consecutive runs of keyframes plus a few anchors spread over the whole
    clip, so each keyframe sees its neighbours in time and the clip's overall look,
    while memory and time stay linear in clip length.
    """
    if len(keyframes) <= max_attended:
        return [KeyframeGroup(tuple(keyframes), ())]
    n_anchors = max(1, max_attended // 4) if max_attended >= 2 else 0
    run = max(1, max_attended - n_anchors)
    # One spare candidate, so a group that owns an anchor still gets n_anchors others.
    count = n_anchors + 1
    candidates = [keyframes[round(i * (len(keyframes) - 1) / (count - 1))] for i in range(count)] if n_anchors else []
    groups = []
    for start in range(0, len(keyframes), run):
        owned = tuple(keyframes[start : start + run])
        anchors = tuple([a for a in candidates if a not in owned][:n_anchors])
        groups.append(KeyframeGroup(owned, anchors))
    return groups
