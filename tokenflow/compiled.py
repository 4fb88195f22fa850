"""Opt-in `torch.compile` of the UNet's shape-stable blocks (`tokenflow edit --compile`).

Only the ResNet blocks and the transformer feed-forwards are compiled: they hold most of
the UNet's FLOPs and behave the same on every call. The self-attention processors stay
eager, because they change behaviour from call to call (joint attention, injection,
propagation). Batches then keep one shape per pass (the edit loop pads the last batch),
so each block compiles once per shape instead of once per call.
"""

from __future__ import annotations


def compile_unet_blocks(unet, mode: str | None = None) -> int:
    """Compile the UNet's ResNet blocks and feed-forwards in place; returns how many."""
    from diffusers.models.attention import FeedForward
    from diffusers.models.resnet import ResnetBlock2D

    count = 0
    for module in unet.modules():
        if isinstance(module, (ResnetBlock2D, FeedForward)):
            module.compile(dynamic=False, mode=mode)
            count += 1
    return count
