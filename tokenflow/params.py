"""What a caller chooses about an edit; defaults follow ALGORITHM.md."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Method = Literal["tokenflow", "per-frame"]

DEFAULT_NEGATIVE = "ugly, blurry, low res, unrealistic, unaesthetic"
# CLIP's text encoder reads 77 tokens (roughly 300 characters); anything longer is cut
# off silently by the tokenizer, so a prompt past this bound is a mistake, not a wish.
MAX_PROMPT_CHARS = 1000
# Working short side: SD 1.x/2.x are trained at 512-768; past this the UNet's memory
# and attention cost explode (and a mistyped --size must not reach the model).
MAX_SHORT_SIDE = 2048


@dataclass(frozen=True)
class EditParams:
    prompt: str
    negative_prompt: str = DEFAULT_NEGATIVE
    inversion_prompt: str = ""
    steps: int = 50
    guidance: float = 7.5
    kf_interval: int = 8
    seed: int = 0
    short_side: int = 512
    method: Method = "tokenflow"
    pnp_f_t: float = 0.8
    pnp_attn_t: float = 0.5
    # Frames per UNet call in the propagation / per-frame passes. A memory device
    # only: the result does not depend on it.
    batch_size: int = 8
    # Keyframes attending jointly in one group (0 = auto: as many as fit the device's
    # token budget at the working size, see keyframes.auto_max_joint_keyframes). Clips
    # with more keyframes are split into groups re-drawn at a random offset every step,
    # each with anchors from across the clip (docs/algorithm.md).
    max_joint_keyframes: int = 0
    # Emit a preview of the keyframes' predicted clean frames every N steps.
    preview_every: int = 5
    preview_size: int = 128
    # Turns token propagation off (non-keyframes then use their own attention);
    # exists to prove propagation matters, not for users.
    propagate: bool = True

    def validate(self) -> None:
        """Raise ValueError with a sentence a user can act on."""
        if not self.prompt.strip():
            raise ValueError("The prompt is empty: describe the edit, e.g. -p 'a watercolor painting'.")
        for name, text in (("prompt", self.prompt), ("negative prompt", self.negative_prompt),
                           ("inversion prompt", self.inversion_prompt)):
            if len(text) > MAX_PROMPT_CHARS:
                raise ValueError(
                    f"The {name} is {len(text)} characters long; the model's text encoder (CLIP) reads only its "
                    f"first 77 tokens, so at most {MAX_PROMPT_CHARS} characters are accepted: shorten it.")
            if "\0" in text:
                raise ValueError(f"The {name} contains a NUL character: remove it.")
        if self.short_side > MAX_SHORT_SIDE:
            raise ValueError(
                f"--size {self.short_side} is too large: the working short side may be at most {MAX_SHORT_SIDE} "
                "pixels (Stable Diffusion 1.x/2.x work best at 512-768); frames still come back at the source size.")
        if not 16 <= self.preview_size <= 1024:
            raise ValueError(f"preview_size must be between 16 and 1024 (got {self.preview_size}).")
        if self.batch_size > 1024 or self.kf_interval > 10_000 or self.max_joint_keyframes > 1024:
            raise ValueError("batch size, --kf-interval and --max-joint-keyframes are out of range "
                             "(at most 1024, 10000 and 1024).")
        if self.steps < 1 or self.steps > 1000:
            raise ValueError(f"--steps must be between 1 and 1000 (got {self.steps}).")
        if self.kf_interval < 1:
            raise ValueError(f"--kf-interval must be at least 1 (got {self.kf_interval}).")
        if self.short_side < 64:
            raise ValueError(
                f"--size {self.short_side} is too small: the working short side must be at least 64 pixels."
            )
        if self.batch_size < 1:
            raise ValueError(f"batch size must be at least 1 (got {self.batch_size}).")
        if self.max_joint_keyframes == 1 or self.max_joint_keyframes < 0:
            raise ValueError(
                f"--max-joint-keyframes must be 0 (auto) or at least 2 (got {self.max_joint_keyframes}): "
                "keyframes share their look by attending to each other."
            )
        if not (0.0 <= self.pnp_f_t <= 1.0 and 0.0 <= self.pnp_attn_t <= 1.0):
            raise ValueError("pnp_f_t and pnp_attn_t are fractions of the steps, between 0 and 1.")
        if self.method not in ("tokenflow", "per-frame"):
            raise ValueError(f"--method must be 'tokenflow' or 'per-frame' (got {self.method!r}).")
        if self.preview_every < 1:
            raise ValueError("preview_every must be at least 1.")

    def to_dict(self) -> dict:
        return asdict(self)
