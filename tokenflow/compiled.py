"""Opt-in `torch.compile` of the UNet's shape-stable blocks (`tokenflow edit --compile`).

Only the ResNet blocks and the transformer feed-forwards are compiled: they hold most of
the UNet's FLOPs and behave the same on every call. The self-attention processors stay
eager, because they change behaviour from call to call (joint attention, injection,
propagation). Batches then keep one shape per pass (the edit loop pads the last batch),
so each block compiles once per shape instead of once per call.
"""

from __future__ import annotations


def compile_unet_blocks(unet, mode: str | None = None, keep_eager: tuple[str, ...] = ()) -> int:
    """Compile the UNet's ResNet blocks and feed-forwards in place, except the modules
    named in `keep_eager` and their parents (those holding hooked modules); returns how many."""
    import torch._dynamo.config as dynamo_config
    from diffusers.models.attention import FeedForward
    from diffusers.models.resnet import ResnetBlock2D

    # All ResNet blocks share one `forward` code object, and dynamo keeps at most
    # `recompile_limit` (8) compiled variants per code object: with ~22 blocks of several
    # shapes the rest would silently fall back to eager. Room for every block and shape.
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 256)
    dynamo_config.accumulated_recompile_limit = max(dynamo_config.accumulated_recompile_limit, 1024)
    count = 0
    for name, module in unet.named_modules():
        if any(hooked == name or hooked.startswith(name + ".") for hooked in keep_eager):
            continue  # a forward hook inside a compiled block would be traced once and frozen
        if isinstance(module, (ResnetBlock2D, FeedForward)):
            module.compile(dynamic=False, mode=mode)
            count += 1
    return count
