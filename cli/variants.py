"""Output names for several prompts edited in one pass: one output per prompt, named after it."""

from __future__ import annotations

import os
from pathlib import Path

from bridge.wire.naming import slug


def variant_output(output: str, prompt_slug: str) -> str:
    """OUT.mp4 -> OUT_<slug>.mp4; a folder (or "dir/") -> dir/<slug>/; a sequence pattern
    dir/f_%04d.png -> dir/<slug>/f_%04d.png."""
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return str(path / prompt_slug) + os.sep
    if "%" in path.name or "#" in path.name:
        return str(path.parent / prompt_slug / path.name)
    return str(path.with_name(f"{path.stem}_{prompt_slug}{path.suffix}"))


def variant_outputs(output: str, prompts: list[str]) -> list[str]:
    """One output per prompt; two prompts with the same slug get _2, _3 ... so none is overwritten."""
    seen: dict[str, int] = {}
    names = []
    for prompt in prompts:
        base = slug(prompt)
        seen[base] = seen.get(base, 0) + 1
        names.append(variant_output(output, base if seen[base] == 1 else f"{base}_{seen[base]}"))
    return names
