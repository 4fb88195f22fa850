"""Where TokenFlow hooks into the UNet, found by the model's structure and module names."""

from __future__ import annotations

from dataclasses import dataclass

from tokenflow.errors import UnsupportedModel

# SD 1.x/2.x decoder layers used for PnP (ALGORITHM.md, "PnP injection").
PNP_CONV_BLOCK = (1, 1)  # up_blocks[1].resnets[1]
PNP_ATTN_BLOCKS = ((1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2))


@dataclass(frozen=True)
class Sites:
    self_attention: tuple[str, ...]  # every self-attention (attn1) module name
    pnp_attention: frozenset[str]  # the subset whose q/k are injected
    pnp_conv: str  # the conv whose output is injected (before the shortcut add)


def _unsupported(reason: str) -> UnsupportedModel:
    return UnsupportedModel(
        f"This UNet does not have the Stable Diffusion 1.x/2.x layout TokenFlow is built on ({reason}); "
        "use an SD 1.5 or SD 2.1 model or a fine-tune of one (SDXL and others are not supported yet)."
    )


def find_sites(unet) -> Sites:
    """Resolve injection sites by name; a clear error for architectures we do not know."""
    up_blocks = getattr(unet, "up_blocks", None)
    if up_blocks is None or len(up_blocks) != 4:
        raise _unsupported(f"expected 4 up blocks, found {0 if up_blocks is None else len(up_blocks)}")
    for index in (1, 2, 3):
        attentions = getattr(up_blocks[index], "attentions", None)
        if attentions is None or len(attentions) != 3:
            raise _unsupported(f"up_blocks[{index}] should have 3 cross-attention transformers")
        for transformer in attentions:
            if len(getattr(transformer, "transformer_blocks", ())) != 1:
                raise _unsupported("each transformer should hold exactly one block (SDXL holds several)")
    if len(getattr(up_blocks[1], "resnets", ())) < 2:
        raise _unsupported("up_blocks[1] should have at least 2 resnets")

    names = {module: name for name, module in unet.named_modules()}
    self_attention = tuple(
        name for name, module in unet.named_modules() if name.endswith(".attn1") and ".transformer_blocks." in name
    )
    if not self_attention:
        raise _unsupported("no self-attention layers found")
    pnp_attention = frozenset(
        names[up_blocks[b].attentions[a].transformer_blocks[0].attn1] for b, a in PNP_ATTN_BLOCKS
    )
    block, resnet = PNP_CONV_BLOCK
    pnp_conv = names[up_blocks[block].resnets[resnet].conv2]
    return Sites(self_attention=self_attention, pnp_attention=pnp_attention, pnp_conv=pnp_conv)
