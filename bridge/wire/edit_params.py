"""The edit parameters, defined once: names, types, defaults, ranges and help.

`EDIT_OPTIONS` is the single table; everything else is derived from it:
- the wire: `problems()` / `complete()` check a job's `params` (the server's submission,
  `tokenflow edit`, `tokenflow submit` and the panel all say the same sentences);
- the command line: `add_param_options()` and `params_from_args()` (cli/edit.py, cli/jobs.py);
- the panel: `ui/model/presets.py` takes its defaults, spin-box ranges and checks from here;
- the documentation: `markdown_table()` is docs/protocol.md's table of edit parameters
  (tests/bridge/test_edit_params.py fails when the two differ).
`tokenflow.params.EditParams` is the engine's input type; it has no defaults or ranges of
its own: callers build it as `EditParams(**complete(values))`. Import-light (no torch), so
every client can load it.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.wire.lora_spec import lora_problem

DEFAULT_NEGATIVE = "ugly, blurry, low res, unrealistic, unaesthetic"
# CLIP's text encoder reads 77 tokens (roughly 300 characters); anything longer is cut
# off silently by the tokenizer, so a prompt past this bound is a mistake, not a wish.
MAX_PROMPT_CHARS = 1000
_CLIP = "the model's text encoder (CLIP) reads only its first 77 tokens"
MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MAX_VARIANTS = 7  # more prompts besides `prompt`: 8 in all (see the `variants` row's `why`)


def _prompt_problem(text: str) -> str | None:
    """What is wrong with one of several prompts (the `variants` items): the `prompt` row's own
    checks, said of "a prompt" (BY_NAME is looked up when called, after the table exists)."""
    return problem(BY_NAME["prompt"], text, lambda _option: "a prompt")


@dataclass(frozen=True)
class EditOption:
    name: str  # EditParams field = key in JobSpec.params
    type: type  # str, int, float, bool, or list (of strings; a tuple in EditParams)
    default: Any  # None: required
    meaning: str
    flag: str | None = None  # command-line option of `edit` and `submit`; None: wire only
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    choices: tuple[str, ...] | None = None
    excluded: tuple[float, ...] = ()  # values refused inside [minimum, maximum]
    range_note: str | None = None  # how the range reads when `excluded` is used
    max_chars: int | None = None  # text: at most this many characters, and never a NUL
    why: str = ""  # the reason for the range, said when a value is refused
    # What a form's spin box spans where the accepted range is open ("any"); a widget
    # needs finite bounds, the wire does not.
    offer: tuple[float, float] | None = None
    item_problem: Callable[[str], str | None] | None = None  # list: what is wrong with one item
    max_items: int | None = None  # list: at most this many items

    @property
    def range_text(self) -> str:
        if self.range_note:
            return self.range_note
        if self.choices:
            return " or ".join(f'"{c}"' for c in self.choices)
        if self.type is bool:
            return "true or false"
        if self.type is list:
            return "list of strings" if self.max_items is None else f"at most {self.max_items} strings"
        if self.type is str:
            words = [] if self.default is not None else ["non-empty"]
            if self.max_chars is not None:
                words.append(f"at most {self.max_chars} characters")
            return ", ".join(words) or "any"
        if self.minimum is not None and self.maximum is not None:
            return f"{_num(self.minimum)}..{_num(self.maximum)}"
        if self.minimum is not None:
            return f">= {_num(self.minimum)}"
        if self.maximum is not None:
            return f"<= {_num(self.maximum)}"
        return "any"

    @property
    def default_text(self) -> str:
        if self.default is None:
            return "required"
        if isinstance(self.default, tuple):
            return "none" if not self.default else ", ".join(self.default)
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return _num(self.default)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


EDIT_OPTIONS: tuple[EditOption, ...] = (
    EditOption("prompt", str, None, "what the edited clip should look like", "--prompt",
               max_chars=MAX_PROMPT_CHARS, why=_CLIP),
    EditOption("negative_prompt", str, DEFAULT_NEGATIVE, "what the edit should avoid", "--negative",
               max_chars=MAX_PROMPT_CHARS, why=_CLIP),
    EditOption("inversion_prompt", str, "", "describes the source; conditions the inversion", "--inversion-prompt",
               max_chars=MAX_PROMPT_CHARS, why=_CLIP),
    EditOption("steps", int, 50, "denoising steps", "--steps", 1, 1000),
    EditOption("guidance", float, 7.5, "classifier-free guidance scale", "--guidance", offer=(0.0, 50.0)),
    EditOption("kf_interval", int, 8, "one keyframe per this many frames", "--kf-interval", 1, 10_000),
    EditOption("seed", int, 0, "random seed; the same seed gives the same result", "--seed",
               offer=(0, 2**31 - 1)),
    # SD 1.x/2.x are trained at 512-768, SDXL at 1024 (0 picks the model's own size,
    # tokenflow/family.py); past 2048 the UNet's memory and attention cost explode (and a
    # mistyped --size must not reach the model).
    EditOption("short_side", int, 0, "working short side in pixels (aspect kept exactly; reflect-padded to multiples of 64); 0 = the "
               "model's own size (512 for SD 1.x/2.x, 1024 for SDXL)", "--size", 0, 2048,
               excluded=tuple(float(v) for v in range(1, 64)), range_note="0 (the model's size), or 64..2048",
               why="Stable Diffusion 1.x/2.x work best at 512-768 and SDXL at 1024, and frames still come "
               "back at the source size"),
    EditOption("method", str, "tokenflow", "tokenflow, or per-frame editing for comparison", "--method",
               choices=("tokenflow", "per-frame")),
    EditOption("pnp_f_t", float, 0.8, "fraction of the steps with convolution-feature injection", None, 0.0, 1.0),
    EditOption("pnp_attn_t", float, 0.5, "fraction of the steps with self-attention injection", None, 0.0, 1.0),
    EditOption("batch_size", int, 8, "frames per UNet call; lower it if memory runs out (the result does "
               "not depend on it)", "--batch-size", 1, 1024),
    EditOption("max_joint_keyframes", int, 0, "keyframes attending to each other in one group; 0 = as many as "
               "fit the device (about 24 at 512x512 on a GPU, 6 on a CPU)", "--max-joint-keyframes", 0, 1024,
               excluded=(1,), range_note="0 (auto), or 2..1024",
               why="keyframes share their look by attending to each other"),
    EditOption("preview_every", int, 5, "send a keyframe preview every this many steps", None, 1),
    EditOption("preview_size", int, 128, "long side of keyframe previews, pixels", None, 16, 1024),
    EditOption("propagate", bool, True, "token propagation to non-keyframes (off only to show it matters)", None),
    # Edit inside a matte (docs/algorithm.md): outside it the source pixels are kept exactly.
    EditOption("matte", str, "", "edit only inside this matte: a movie, an image sequence numbered like the "
               "source (matte.%04d.png), or `alpha` for the source's own alpha; white (or opaque) = edited, "
               "empty = the whole frame", "--matte", max_chars=MAX_PATH_CHARS, why="it is a file path"),
    EditOption("matte_invert", bool, False, "edit outside the matte instead", "--matte-invert"),
    EditOption("matte_feather", float, 0.0, "soften the matte's edge over this many source pixels",
               "--matte-feather", 0.0, 1000.0),
    EditOption("loras", list, (), "LoRA styles, each PATH_OR_ID[:SCALE] (a .safetensors file or hub id; scale "
               "1 = as trained); repeat the option for several", "--lora", item_problem=lora_problem),
    # Several prompts in one pass (docs/protocol.md, "Several prompts in one job"): the CLI's
    # repeated -p fills it (prompts_from_args), so it has no flag of its own.
    EditOption("variants", list, (), "more prompts edited in the same pass as `prompt`, sharing the inversion "
               "and the source branch; one output each, named after its prompt", None, item_problem=_prompt_problem,
               max_items=MAX_VARIANTS, why="each prompt adds two UNet evaluations per frame and step and holds its "
               "own latents for the whole clip, so eight prompts is about what one GPU's memory and a reviewer's "
               "eye can compare; split more into several jobs"),
)
BY_NAME = {o.name: o for o in EDIT_OPTIONS}


# --- checking: one set of sentences for every caller ---

Label = Callable[[EditOption], str]


def wire_name(option: EditOption) -> str:
    """How the wire and the server name a parameter: its `params` key."""
    return option.name


def flag_name(option: EditOption) -> str:
    """How the command line names a parameter: its option, else its key."""
    return option.flag or option.name


class ParamsError(ValueError):
    """A value the table refuses; `name` is the parameter, the message a sentence a user can act on."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name


_TYPE_WORDS = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false",
               list: "a list of strings"}


def _has_type(option: EditOption, value: Any) -> bool:
    if option.type is list:
        return isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
    if option.type is bool or isinstance(value, bool):
        return option.type is bool and isinstance(value, bool)
    if option.type is int:
        return isinstance(value, int)
    if option.type is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, str)


def _with_why(sentence: str, option: EditOption) -> str:
    return f"{sentence}; {option.why}." if option.why else f"{sentence}."


def too_long(option: EditOption, value: Any, label: Label = wire_name) -> str | None:
    """Only the length bound of a text `option`: what the protocol checks before its own string limit."""
    if option.max_chars is None or not isinstance(value, str) or len(value) <= option.max_chars:
        return None
    because = f", but {option.why}," if option.why else ";"
    return (f"{label(option)} is {len(value)} characters long{because} so at most {option.max_chars} "
            "characters are accepted: shorten it.")


def problem(option: EditOption, value: Any, label: Label = wire_name) -> str | None:
    """What is wrong with `value` for `option`, in one sentence naming it by `label`; None if nothing."""
    name = label(option)
    if not _has_type(option, value):
        return f"{name} must be {_TYPE_WORDS[option.type]} (got {type(value).__name__})."
    if option.choices is not None and value not in option.choices:
        return f"{name} must be {option.range_text} (got {value!r})."
    if option.type is str:
        if option.default is None and not value.strip():
            return f"{name} is empty: describe the edit, e.g. 'a watercolor painting'."
        if option.max_chars is not None and "\0" in value:
            return f"{name} contains a NUL character: remove it."
        return too_long(option, value, label)
    if option.type is bool:
        return None
    if option.type is list:
        if option.max_items is not None and len(value) > option.max_items:
            return _with_why(f"{name} has {len(value)} items; at most {option.max_items} are accepted", option)
        for item in value:
            wrong = option.item_problem(item) if option.item_problem else None
            if wrong:
                return f"{name}: {wrong}"
        return None
    low, high = option.minimum, option.maximum
    below, above = low is not None and value < low, high is not None and value > high
    if value in option.excluded or (option.range_note and (below or above)):
        return _with_why(f"{name} must be {option.range_text} (got {value})", option)
    if below or above:
        bounds = " and ".join(([] if low is None else [f"at least {_num(low)}"])
                              + ([] if high is None else [f"at most {_num(high)}"]))
        return _with_why(f"{name} {value} is too {'small' if below else 'large'}: it must be {bounds}", option)
    return None


def problems(values: Mapping[str, Any], label: Label = wire_name) -> dict[str, str]:
    """Every problem of an edit's `params`, by parameter name, in table order (unknown names first).

    A parameter left out takes its default, so only a required one missing is a problem.
    """
    found = {key: f"Unknown edit parameter {key!r}." for key in values if key not in BY_NAME}
    for option in EDIT_OPTIONS:
        if option.name not in values:
            if option.default is None:
                found[option.name] = f"{label(option)} is required: {option.meaning}."
            continue
        wrong = problem(option, values[option.name], label)
        if wrong:
            found[option.name] = wrong
    return found


def complete(values: Mapping[str, Any], label: Label = wire_name) -> dict[str, Any]:
    """Every parameter, defaults filled in, checked: the keyword arguments of an `EditParams`.

    Raises ParamsError with the first problem (see `problems`)."""
    for name, message in problems(values, label).items():
        raise ParamsError(name, message)
    filled = {o.name: values.get(o.name, o.default) for o in EDIT_OPTIONS}
    kinds = {float: float, list: tuple}
    return {o.name: kinds[o.type](filled[o.name]) if o.type in kinds else filled[o.name] for o in EDIT_OPTIONS}


def form_range(name: str) -> tuple[float, float]:
    """The bounds a form's spin box offers for a numeric parameter: its range, or `offer` where it is open."""
    option = BY_NAME[name]
    if option.minimum is not None and option.maximum is not None:
        return option.minimum, option.maximum
    if option.offer is None:
        raise ValueError(f"{name} has an open range and no `offer` for a form")  # a gap in the table
    return option.offer


# --- the command line ---


def _dest(option: EditOption) -> str:
    assert option.flag is not None
    return option.flag.lstrip("-").replace("-", "_")


def add_param_options(parser: argparse.ArgumentParser, *, send_defaults: bool) -> None:
    """The edit options with a command-line flag (the prompt too).

    send_defaults: `tokenflow edit` fills every default in; `tokenflow submit` leaves unset
    options out (None), so the server's defaults apply, and only shows them in --help.
    """
    for option in EDIT_OPTIONS:
        if option.flag is None:
            continue
        names = ["-p", option.flag] if option.name == "prompt" else [option.flag]
        # argparse %-formats help texts: a literal % (matte.%04d.png) is written %%.
        kwargs: dict[str, Any] = {"help": option.meaning.replace("%", "%%"), "dest": _dest(option)}
        if option.name == "prompt":
            # Repeatable: `tokenflow edit` edits several prompts in one pass (prompts_from_args).
            kwargs.update(action="append", help=kwargs["help"] + "; repeat -p for several versions in one pass")
        if option.default is None:
            kwargs["required"] = True
        elif option.type is list:  # repeatable; left out: the default (filled in by `complete`)
            kwargs.update(action="append", default=None, metavar=option.name.upper().rstrip("S"))
            kwargs["help"] += f" (default: {option.default_text})"
            parser.add_argument(*names, **kwargs)
            continue
        else:
            kwargs["default"] = option.default if send_defaults else None
            kwargs["help"] += f" (default: {option.default_text})"
        if option.type is bool:
            # A switch: given = true. `submit` leaves it unset (None) when absent, so the
            # server's default applies.
            kwargs.update(action="store_const", const=True)
        elif option.choices:
            kwargs["choices"] = option.choices
        elif option.type is not str:
            kwargs["type"] = option.type
        parser.add_argument(*names, **kwargs)


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """EditParams fields by name, for the options given (all of them when defaults were filled in)."""
    params: dict[str, Any] = {}
    for option in EDIT_OPTIONS:
        if option.flag is None:
            continue
        value = getattr(args, _dest(option), None)
        if option.name == "prompt" and isinstance(value, list):  # a repeated -p: the first, the rest are variants
            if len(value) > 1:
                params["variants"] = value[1:]
            value = value[0] if value else None
        if value is not None:
            params[option.name] = value
    return params


def prompts_from_args(args: argparse.Namespace) -> list[str]:
    """Every -p given, in order."""
    value = getattr(args, _dest(BY_NAME["prompt"]), None)
    return list(value) if isinstance(value, list) else ([value] if value else [])


def matte_options_problem(params: dict[str, Any], label: Label = wire_name) -> str | None:
    """`matte_invert` or a feather without a `matte`: the whole frame would be edited while the
    user asked for a matte (a forgotten --matte), so a client refuses it before any work. The
    protocol itself lets them be (a form may keep its switches while no matte is loaded)."""
    if params.get("matte"):
        return None
    given = [name for name in ("matte_invert", "matte_feather") if params.get(name)]
    if not given:
        return None
    names = " and ".join(label(BY_NAME[name]) for name in given)
    return (f"{names} {'apply' if len(given) > 1 else 'applies'} to a matte, but no {label(BY_NAME['matte'])} "
            "was given, so the whole frame would be edited: add the matte, or leave "
            f"{'them' if len(given) > 1 else 'it'} out.")


def prompts_problem(args: argparse.Namespace) -> str | None:
    """The repeated -p in command-line words: the table checks them as `prompt` + `variants`,
    whose messages ("variants has 8 items") name a key the command line never shows."""
    prompts = prompts_from_args(args)
    if len(prompts) > MAX_VARIANTS + 1:
        return _with_why(f"-p is given {len(prompts)} times, but at most {MAX_VARIANTS + 1} prompts are edited in "
                         "one pass", BY_NAME["variants"])
    for number, text in enumerate(prompts[1:], 2):
        wrong = _prompt_problem(text)
        if wrong:
            return f"the prompt given by -p number {number} {wrong.removeprefix('a prompt ')}"
    return None


# --- the documentation ---


def markdown_table() -> str:
    """docs/protocol.md's table of edit parameters (between its edit-parameters markers)."""
    rows = ["| name | type | default | range | option | meaning |", "| --- | --- | --- | --- | --- | --- |"]
    rows += [f"| `{o.name}` | {o.type.__name__} | {o.default_text} | {o.range_text} | "
             f"{f'`{o.flag}`' if o.flag else '-'} | {o.meaning} |" for o in EDIT_OPTIONS]
    return "\n".join(rows) + "\n"
