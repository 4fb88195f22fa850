"""How a LoRA is named in an edit's parameters: `PATH_OR_ID[:SCALE]`. Import-light.

One string per LoRA, so the parameter is a plain list of strings on every path (wire,
command line, queue files, handoff). The scale follows the last colon when that part
reads as a number, so Windows paths (`C:\\styles\\ink.safetensors`) and hub ids keep
their own colons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEFAULT_SCALE = 1.0
# Past this a LoRA's change dominates the model and the output is noise: a typo, not a wish.
MAX_SCALE = 8.0


@dataclass(frozen=True)
class LoraRef:
    source: str  # a .safetensors file, a folder holding one, or a hub id
    scale: float

    def text(self) -> str:
        return f"{self.source}:{self.scale:g}"


def parse_lora(text: str) -> LoraRef:
    """`path[:scale]` -> LoraRef; ValueError with a sentence when it cannot be read."""
    text = text.strip()
    source, scale = text, DEFAULT_SCALE
    head, colon, tail = text.rpartition(":")
    if colon and head and not tail.startswith(("\\", "/")):
        try:
            scale = float(tail)
            source = head
        except ValueError:
            pass  # a colon inside the name (not a scale)
    if not source or (colon and not head):
        raise ValueError(f"LoRA {text!r} names no file or hub id: write PATH_OR_ID or PATH_OR_ID:SCALE.")
    if not math.isfinite(scale) or abs(scale) > MAX_SCALE:
        raise ValueError(f"LoRA scale {scale:g} in {text!r} is outside -{MAX_SCALE:g}..{MAX_SCALE:g}: "
                         "1 is the LoRA as trained, 0 turns it off.")
    return LoraRef(source, scale)


def lora_problem(text: str) -> str | None:
    try:
        parse_lora(text)
    except ValueError as exc:
        return str(exc)
    return None


def parse_lora_list(text: str) -> tuple[str, ...]:
    """A form's "path:scale, path:scale" field -> the parameter's strings (empty items dropped)."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
