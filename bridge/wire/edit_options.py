"""The edit parameters, once: the wire's `params` keys, `tokenflow edit` and `tokenflow submit` options.

`EDIT_OPTIONS` is the single table. `tokenflow edit` (cli/edit.py) and `tokenflow
submit` (cli/jobs.py) build their options from it, and docs/protocol.md's table of
edit parameters is checked against it (tests/conformance), which is checked against
`tokenflow.params.EditParams` (its fields, defaults and `validate()` ranges), so the
four cannot drift apart. Import-light: no torch, so the bridge can load it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EditOption:
    name: str  # EditParams field = key in JobSpec.params
    type: type  # str, int, float or bool
    default: Any  # None: required
    meaning: str
    flag: str | None = None  # command-line option of `edit` and `submit`; None: wire only
    minimum: float | None = None  # inclusive
    maximum: float | None = None  # inclusive
    choices: tuple[str, ...] | None = None
    excluded: tuple = ()  # values refused inside [minimum, maximum]
    range_note: str | None = None  # how the range reads when `excluded` is used

    @property
    def range_text(self) -> str:
        if self.range_note:
            return self.range_note
        if self.choices:
            return " or ".join(f'"{c}"' for c in self.choices)
        if self.type is bool:
            return "true or false"
        if self.type is str:
            return "non-empty" if self.default is None else "any"
        if self.minimum is not None and self.maximum is not None:
            return f"{_num(self.minimum)}..{_num(self.maximum)}"
        if self.minimum is not None:
            return f">= {_num(self.minimum)}"
        return "any"

    @property
    def default_text(self) -> str:
        if self.default is None:
            return "required"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, str):
            return f'"{self.default}"'
        return _num(self.default)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def out_of_range(name: str, value: Any) -> str | None:
    """A sentence saying what is wrong with `value` for parameter `name`, or None if it is in range."""
    option = BY_NAME.get(name)
    if option is None or isinstance(value, bool) or value is None:
        return None
    if option.choices and value not in option.choices:
        return f"{name} must be {option.range_text} (got {value!r})."
    if isinstance(value, (int, float)):
        low, high = option.minimum, option.maximum
        if (low is not None and value < low) or (high is not None and value > high) or value in option.excluded:
            return f"{name} must be {option.range_text} (got {value})."
    if option.type is str and option.default is None and isinstance(value, str) and not value.strip():
        return f"{name} must not be empty."
    return None


DEFAULT_NEGATIVE = "ugly, blurry, low res, unrealistic, unaesthetic"

EDIT_OPTIONS: tuple[EditOption, ...] = (
    EditOption("prompt", str, None, "what the edited clip should look like", "--prompt"),
    EditOption("negative_prompt", str, DEFAULT_NEGATIVE, "what the edit should avoid", "--negative"),
    EditOption("inversion_prompt", str, "", "describes the source; conditions the inversion", "--inversion-prompt"),
    EditOption("steps", int, 50, "denoising steps", "--steps", 1, 1000),
    EditOption("guidance", float, 7.5, "classifier-free guidance scale", "--guidance"),
    EditOption("kf_interval", int, 8, "one keyframe per this many frames", "--kf-interval", 1),
    EditOption("seed", int, 0, "random seed; the same seed gives the same result", "--seed"),
    EditOption("short_side", int, 512, "working short side in pixels (sides rounded to multiples of 64)",
               "--size", 64),
    EditOption("method", str, "tokenflow", "tokenflow, or per-frame editing for comparison", "--method",
               choices=("tokenflow", "per-frame")),
    EditOption("pnp_f_t", float, 0.8, "fraction of the steps with convolution-feature injection", None, 0.0, 1.0),
    EditOption("pnp_attn_t", float, 0.5, "fraction of the steps with self-attention injection", None, 0.0, 1.0),
    EditOption("batch_size", int, 8, "frames per UNet call; lower it if memory runs out (the result does "
               "not depend on it)", "--batch-size", 1),
    EditOption("max_joint_keyframes", int, 0, "keyframes attending to each other in one group; 0 = as many as "
               "fit the device (about 24 at 512x512 on a GPU, 6 on a CPU)", "--max-joint-keyframes", 0,
               excluded=(1,), range_note="0 (auto), or >= 2"),
    EditOption("preview_every", int, 5, "send a keyframe preview every this many steps", None, 1),
    EditOption("preview_size", int, 128, "long side of keyframe previews, pixels", None),
    EditOption("propagate", bool, True, "token propagation to non-keyframes (off only to show it matters)", None),
)
BY_NAME = {o.name: o for o in EDIT_OPTIONS}


def _dest(flag: str) -> str:
    """The argparse attribute of a command-line flag."""
    return flag.lstrip("-").replace("-", "_")


def add_param_options(parser: argparse.ArgumentParser, *, send_defaults: bool) -> None:
    """The edit options with a command-line flag (the prompt too).

    send_defaults: `tokenflow edit` fills every default in; `tokenflow submit` leaves unset
    options out (None), so the server's defaults apply, and only shows them in --help.
    """
    for option in EDIT_OPTIONS:
        if option.flag is None:
            continue
        names = ["-p", option.flag] if option.name == "prompt" else [option.flag]
        kwargs: dict[str, Any] = {"help": option.meaning, "dest": _dest(option.flag)}
        if option.default is None:
            kwargs["required"] = True
        else:
            kwargs["default"] = option.default if send_defaults else None
            kwargs["help"] += f" (default: {option.default_text})"
        if option.choices:
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
        value = getattr(args, _dest(option.flag), None)
        if value is not None:
            params[option.name] = value
    return params
