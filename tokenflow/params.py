"""What a caller chooses about an edit: the engine's input type.

The defaults, ranges and the sentences that refuse a value live in one table,
bridge/wire/edit_params.py (this package may not import it); callers build this as
`EditParams(**complete(values))`, so every field is given and already checked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Method = Literal["tokenflow", "per-frame"]


@dataclass(frozen=True)
class EditParams:
    prompt: str
    negative_prompt: str
    inversion_prompt: str
    steps: int
    guidance: float
    kf_interval: int
    seed: int
    short_side: int  # 0: the model family's own size (tokenflow/family.py)
    method: Method
    pnp_f_t: float
    pnp_attn_t: float
    # Frames per UNet call in the propagation / per-frame passes. A memory device
    # only: the result does not depend on it.
    batch_size: int
    # Keyframes attending jointly in one group (0 = auto: as many as fit the device's
    # token budget at the working size, see keyframes.auto_max_joint_keyframes). Clips
    # with more keyframes are split into groups re-drawn at a random offset every step,
    # each with anchors from across the clip (docs/algorithm.md).
    max_joint_keyframes: int
    # Emit a preview of the keyframes' predicted clean frames every N steps.
    preview_every: int
    preview_size: int
    # Turns token propagation off (non-keyframes then use their own attention);
    # exists to prove propagation matters, not for users.
    propagate: bool
    # Edit inside a matte (tokenflow/matte.py): where the matte comes from (the caller reads
    # it and hands the engine its frames; "" = the whole frame), inverted, feathered (px).
    matte: str
    matte_invert: bool
    matte_feather: float
    # LoRA adapters, each "PATH_OR_ID[:SCALE]" (bridge/wire/lora_spec.py), applied in order.
    loras: tuple[str, ...]
    # More prompts edited in the same pass as `prompt` (variant 1, 2, ...), sharing the
    # inversion and the source branch; each variant's frames equal that prompt edited alone.
    variants: tuple[str, ...]

    @property
    def prompts(self) -> tuple[str, ...]:
        """Every prompt of the edit in variant order: `prompt` is variant 0."""
        return (self.prompt, *self.variants)

    def __post_init__(self) -> None:
        # What the loops below rely on, not the user-facing ranges (those are checked,
        # with sentences, before an EditParams is made): a count of zero would divide
        # by zero or loop forever, a method outside the two would silently run one.
        assert min(self.steps, self.kf_interval, self.batch_size, self.preview_every) >= 1, self
        assert self.method in ("tokenflow", "per-frame"), self.method

    def to_dict(self) -> dict:
        """Plain JSON/msgpack values: a stored job reads back equal (lists, not tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
