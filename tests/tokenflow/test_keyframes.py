from __future__ import annotations

import torch

from tokenflow.keyframes import keyframe_groups, neighbours, sample_keyframes


def test_one_keyframe_per_group_and_tail_group_included():
    keyframes = sample_keyframes(21, 8, torch.Generator().manual_seed(0))
    assert len(keyframes) == 3
    for group, frame in enumerate(keyframes):
        assert group * 8 <= frame < min(21, (group + 1) * 8)


def test_keyframes_are_redrawn_each_step_and_seeded():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    draws1 = [sample_keyframes(64, 8, g1) for _ in range(6)]
    draws2 = [sample_keyframes(64, 8, g2) for _ in range(6)]
    assert draws1 == draws2
    assert len({tuple(d) for d in draws1}) > 1


def test_two_sided_weights():
    keyframes = [2, 10, 18]
    assert neighbours(2, keyframes) == neighbours(2, keyframes)
    n = neighbours(4, keyframes)
    assert (n.before, n.after) == (2, 10) and abs(n.weight_before - 0.75) < 1e-9
    n = neighbours(10, keyframes)
    assert (n.before, n.after, n.weight_before) == (10, 10, 1.0)
    n = neighbours(0, keyframes)
    assert (n.before, n.after, n.weight_before) == (2, 2, 1.0)
    n = neighbours(20, keyframes)
    assert (n.before, n.after, n.weight_before) == (18, 18, 1.0)


def test_groups_are_bounded_and_own_every_keyframe_once():
    keyframes = list(range(0, 400, 8))
    groups = keyframe_groups(keyframes, 6)
    owned = [f for g in groups for f in g.owned]
    assert owned == keyframes
    assert all(len(g.members) <= 6 for g in groups)
    assert all(g.anchors for g in groups)  # long clips: each group also sees the clip elsewhere
    short = keyframe_groups(keyframes[:5], 6)
    assert len(short) == 1 and short[0].members == tuple(keyframes[:5]) and not short[0].anchors
