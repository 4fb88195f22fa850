"""Output names from a template: `{clip}_{first}-{last}_{prompt}_{seed}_{job}`.

Editors find renders by name, so names are predictable (the same job gets the same
name), file-system safe on every OS, and never reuse a file that is already there
(`unique_path` adds `_2`, `_3`, ... before the extension). Standard library only: the
client checks templates before queueing, the server renders them.
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bridge.wire.protocol import NAME_FIELDS

DEFAULT_TEMPLATE = "{clip}_{first}-{last}_{prompt}_{seed}_{job}"
PROMPT_SLUG_CHARS = 40
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_NOT_IN_NAMES = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


class TemplateError(ValueError):
    """A template that cannot make a file name; the message says what to change."""


def check_template(template: str) -> None:
    """Refuse unknown placeholders, format specs and folder separators, naming the culprit."""
    if not template.strip():
        raise TemplateError("The name template is empty: use something like " + DEFAULT_TEMPLATE + ".")
    if "/" in template or "\\" in template:
        raise TemplateError(f"The name template {template!r} contains a folder separator: outputs go straight into "
                            "the destination folder, so name files only.")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"The name template {template!r} is malformed ({exc}): write placeholders as {{clip}}; "
                            "a literal brace as {{{{ or }}}}.") from None
    for _, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in NAME_FIELDS:
            raise TemplateError(f"The name template {template!r} uses {{{field}}}, which is not a known placeholder: "
                                f"use {', '.join('{' + f + '}' for f in NAME_FIELDS)}.")
        if spec or conversion:
            raise TemplateError(f"The name template {template!r} formats {{{field}}}: placeholders take no format "
                                "spec or conversion.")


def slug(text: str, limit: int = PROMPT_SLUG_CHARS) -> str:
    """"A Watercolor painting, soft light" -> "a-watercolor-painting-soft-light" (ASCII, short)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    out = ""
    for word in words:
        candidate = f"{out}-{word}" if out else word
        if len(candidate) > limit:
            break
        out = candidate
    return out or (words[0][:limit] if words else "untitled")


def safe_part(text: str) -> str:
    """A value as it may appear in a file name: unsafe runs become '_', no leading dots."""
    cleaned = _UNSAFE.sub("_", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()).strip("._")
    return cleaned[:80] or "clip"


def render(template: str, values: Mapping[str, object]) -> str:
    """The file name (without extension) for these values; `values` has every NAME_FIELDS key.

    `prompt` None: a job with several prompts, whose outputs each add their own prompt
    (`variant_outputs`); `{prompt}` then goes from the name with one separator beside it,
    so no output carries the first prompt's words next to its own."""
    check_template(template)
    if values["prompt"] is None:
        template = re.sub(r"[_\-. ]\{prompt\}", "", template)  # the separator before it, where there is one
        template = re.sub(r"\{prompt\}[_\-. ]?", "", template) or "{clip}"  # else the one after
    parts = {
        "clip": safe_part(str(values["clip"])),
        "prompt": slug(str(values["prompt"])),
        **{k: safe_part(str(values[k])) for k in NAME_FIELDS if k not in ("clip", "prompt")},
    }
    # The template's own text too: a control character or one of <>:"/\|?* makes a name some file
    # systems refuse and scripts trip over (a newline in a file name).
    name = _NOT_IN_NAMES.sub("_", template.format(**parts))
    name = safe_part(name) if name.startswith(".") or not name.strip() else name
    return name[:200]


def unique_path(path: Path, taken: Callable[[Path], bool] = lambda p: p.exists()) -> Path:
    """`path`, or the first of `stem_2.ext`, `stem_3.ext`, ... that is not taken."""
    if not taken(path):
        return path
    suffix = path.suffix if path.suffix and not path.name.endswith("/") else ""
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    for n in range(2, 100_000):
        candidate = path.with_name(f"{stem}_{n}{suffix}")
        if not taken(candidate):
            return candidate
    raise TemplateError(f"Every name like {path} is taken: choose another destination or template.")


def variant_output(output: str, prompt_slug: str) -> str:
    """OUT.mp4 -> OUT_<slug>.mp4; a folder (or "dir/") -> dir/<slug>/; a sequence pattern
    dir/f_%04d.png -> dir/<slug>/f_%04d.png."""
    path = Path(output)
    if output.endswith(("/", os.sep)) or path.is_dir():
        return str(path / prompt_slug) + os.sep
    if "%" in path.name or "#" in path.name:
        return str(path.parent / prompt_slug / path.name)
    return str(path.with_name(f"{path.stem}_{prompt_slug}{path.suffix}"))


def variant_outputs(output: str, prompts: Sequence[str]) -> list[str]:
    """One output per prompt of a several-prompt edit (docs/protocol.md, "Several prompts in one
    job"), named after it; two prompts with the same slug get _2, _3 ... so none is overwritten.
    A one-prompt job keeps `output` as it is (`prompt_outputs`)."""
    seen: dict[str, int] = {}
    names = []
    for prompt in prompts:
        base = slug(prompt)
        seen[base] = seen.get(base, 0) + 1
        names.append(variant_output(output, base if seen[base] == 1 else f"{base}_{seen[base]}"))
    return names


def prompt_outputs(output: str, prompts: Sequence[str]) -> list[str]:
    """The outputs of a job with these prompts: `output` itself for one prompt (as ever), else
    one per prompt (`variant_outputs`)."""
    return [output] if len(prompts) <= 1 else variant_outputs(output, prompts)


def outputs_by_prompt(outputs: Sequence[str], prompts: int) -> list[list[str]] | None:
    """A finished job's flat `outputs` (done.outputs, JobInfo.outputs) per prompt, for a client
    that has the listing but not the `done` event's `variants`. The server lists every prompt's
    files in prompt order, as many for each (one movie, or one file a frame); None when the
    list does not split so."""
    if prompts < 1 or len(outputs) % prompts:
        return None
    each = len(outputs) // prompts
    return [list(outputs[n * each:(n + 1) * each]) for n in range(prompts)]
