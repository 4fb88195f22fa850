"""Where TokenFlow hooks into the UNet, found by the model's structure and module names.

One rule for every family (ALGORITHM.md, "PnP injection"; docs/algorithm.md, "SDXL"):
the decoder levels that hold attention, coarse to fine; the PnP conv is the second
resnet's conv2 of the first (coarsest) such level; Q/K injection covers every attention
module (transformer) of those levels but the first one, with every self-attention
layer inside it (SD holds one per transformer, SDXL several). On SD 1.x/2.x this gives
the public code's up_blocks[1].resnets[1] and its eight layers; on SDXL
up_blocks[0].resnets[1] and the transformers up_blocks[0].attentions[1:] and
up_blocks[1].attentions[:].
"""

from __future__ import annotations

from dataclasses import dataclass

from tokenflow.errors import UnsupportedModel
from tokenflow.family import SD, Family, family_of_unet_config

# SD 1.x/2.x decoder layers used for PnP (ALGORITHM.md, "PnP injection"), as (up block,
# index); what the rule above gives on SD's layout (tests/tokenflow/test_model_and_sites.py).
PNP_CONV_BLOCK = (1, 1)  # up_blocks[1].resnets[1]
PNP_ATTN_BLOCKS = ((1, 1), (1, 2), (2, 0), (2, 1), (2, 2), (3, 0), (3, 1), (3, 2))


@dataclass(frozen=True)
class Sites:
    self_attention: tuple[str, ...]  # every self-attention (attn1) module name
    pnp_attention: frozenset[str]  # the subset whose q/k are injected
    pnp_conv: str  # the conv whose output is injected (before the shortcut add)


def _unsupported(family: Family, reason: str) -> UnsupportedModel:
    return UnsupportedModel(
        f"This UNet does not have the {family.label} layout TokenFlow is built on ({reason}); "
        "use an SD 1.5 or SD 2.1 model, SDXL base 1.0, or a fine-tune of one."
    )


def pnp_blocks(family: Family) -> tuple[tuple[int, int], tuple[tuple[int, int], ...]]:
    """(conv's (up block, resnet), the injected attention modules' (up block, attention)) by the rule."""
    levels = family.attention_up_blocks
    modules = tuple((b, a) for b in levels for a in range(3))
    return (levels[0], 1), modules[1:]


def attention_stride(unet) -> int:
    """How much smaller than the latent the finest self-attention level is (SD 1, SDXL 2)."""
    for index, block in enumerate(getattr(unet, "down_blocks", ())):
        if getattr(block, "attentions", None):
            return 2**index
    return 1


def find_sites(unet) -> Sites:
    """Resolve injection sites by name; a clear error for architectures we do not know."""
    family = family_of_unet_config(unet.config)
    up_blocks = getattr(unet, "up_blocks", None)
    if up_blocks is None or len(up_blocks) != family.up_blocks:
        found = 0 if up_blocks is None else len(up_blocks)
        raise _unsupported(family, f"expected {family.up_blocks} up blocks, found {found}")
    for index in family.attention_up_blocks:
        attentions = getattr(up_blocks[index], "attentions", None)
        if attentions is None or len(attentions) != 3:
            raise _unsupported(family, f"up_blocks[{index}] should have 3 cross-attention transformers")
        for transformer in attentions:
            depth = len(getattr(transformer, "transformer_blocks", ()))
            if depth < 1 or (family is SD and depth != 1):
                raise _unsupported(family, "each transformer should hold exactly one block (SDXL holds several)")
    (conv_block, conv_resnet), attention_blocks = pnp_blocks(family)
    if len(getattr(up_blocks[conv_block], "resnets", ())) < 2:
        raise _unsupported(family, f"up_blocks[{conv_block}] should have at least 2 resnets")

    names = {module: name for name, module in unet.named_modules()}
    self_attention = tuple(
        name for name, module in unet.named_modules() if name.endswith(".attn1") and ".transformer_blocks." in name
    )
    if not self_attention:
        raise _unsupported(family, "no self-attention layers found")
    pnp_attention = frozenset(
        names[block.attn1] for b, a in attention_blocks for block in up_blocks[b].attentions[a].transformer_blocks
    )
    pnp_conv = names[up_blocks[conv_block].resnets[conv_resnet].conv2]
    return Sites(self_attention=self_attention, pnp_attention=pnp_attention, pnp_conv=pnp_conv)
