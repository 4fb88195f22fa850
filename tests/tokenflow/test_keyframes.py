from __future__ import annotations

import torch

from tokenflow.keyframes import (
    GPU_TOKEN_BUDGET,
    auto_max_joint_keyframes,
    neighbours,
    plan_groups,
    resolve_max_joint_keyframes,
    sample_keyframes,
)


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
    n = neighbours(4, keyframes)
    assert (n.before, n.after) == (2, 10) and abs(n.weight_before - 0.75) < 1e-9
    n = neighbours(10, keyframes)
    assert (n.before, n.after, n.weight_before) == (10, 10, 1.0)
    n = neighbours(0, keyframes)
    assert (n.before, n.after, n.weight_before) == (2, 2, 1.0)
    n = neighbours(20, keyframes)
    assert (n.before, n.after, n.weight_before) == (18, 18, 1.0)


def _plans(n_frames: int, max_joint: int, steps: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    plans = []
    for _ in range(steps):
        keyframes = sample_keyframes(n_frames, 8, generator)
        plans.append((keyframes, plan_groups(keyframes, max_joint, generator)))
    return plans


def test_long_clip_groups_move_every_step_and_hold_anchors_from_across_the_clip():
    max_joint = 8
    plans = _plans(300, max_joint, steps=6)
    boundaries = []
    for keyframes, groups in plans:
        assert len(keyframes) == 38 and len(groups) > 1
        # Every keyframe is owned by exactly one group, groups are consecutive runs in order.
        assert [f for g in groups for f in g.owned] == keyframes
        for group in groups:
            # Bounded whatever the clip's length, a quarter of it anchors.
            assert len(group.members) <= max_joint and len(set(group.members)) == len(group.members)
            assert len(group.anchors) == max_joint // 4
            assert not set(group.anchors) & set(group.owned)
            # Anchors come from other parts of the clip, spread over it (not clustered next to the run).
            outside = [a for a in group.anchors if not (group.owned[0] - 16 <= a <= group.owned[-1] + 16)]
            assert outside, group
            assert max(group.anchors) - min(group.anchors) >= 300 // 3
        # Where a group starts, as a keyframe slot (slot s holds frames 8s..8s+7): the frame
        # itself moves with every keyframe draw, the slot only if the partition moves.
        boundaries.append(frozenset(g.owned[0] // 8 for g in groups[1:]))
    # The seams sit in other slots from step to step; no slot is a seam at every step.
    assert len(set(boundaries)) >= 4
    assert not frozenset.intersection(*boundaries)
    # Anchors are drawn at a random phase: they change from step to step too.
    assert len({groups[0].anchors for _, groups in plans}) > 1


def test_plan_is_seeded():
    assert _plans(300, 8, 3, seed=4) == _plans(300, 8, 3, seed=4)


def test_keyframes_that_fit_attend_jointly_in_one_group_and_draw_nothing():
    generator = torch.Generator().manual_seed(1)
    state = generator.get_state()
    keyframes = list(range(3, 120, 8))
    groups = plan_groups(keyframes, 15, generator)
    assert groups[0].owned == tuple(keyframes) and groups[0].anchors == () and len(groups) == 1
    assert torch.equal(generator.get_state(), state)  # the keyframe draws of later steps are unaffected


def test_a_120_frame_clip_at_512_is_one_group_by_default_on_a_gpu():
    latent = 512 // 8
    max_joint = resolve_max_joint_keyframes(0, "cuda", latent, latent)
    assert max_joint == GPU_TOKEN_BUDGET // (latent * latent) >= 24
    keyframes = sample_keyframes(120, 8, torch.Generator().manual_seed(0))
    assert len(plan_groups(keyframes, max_joint, torch.Generator())) == 1
    # The CPU default is lower (joint attention is slow there); an explicit value wins.
    assert auto_max_joint_keyframes("cpu", latent, latent) < max_joint
    assert resolve_max_joint_keyframes(5, "cuda", latent, latent) == 5
    # Bigger frames, fewer keyframes: the budget is in tokens.
    assert auto_max_joint_keyframes("cuda", 1080 // 8, 1920 // 8) < max_joint
