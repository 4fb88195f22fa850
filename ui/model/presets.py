"""Named prompt presets, kept as JSON in the user config folder."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from bridge.wire.edit_params import BY_NAME, form_range, problems
from bridge.wire.lora_spec import parse_lora_list


def _default(name: str) -> Any:
    """A field default read from the table when a form is made (so a form follows the table)."""
    return field(default_factory=lambda: BY_NAME[name].default)


# How the panel's messages name the parameters it shows.
LABELS = {"prompt": "The prompt", "negative_prompt": "The negative prompt", "seed": "The seed", "steps": "Steps",
          "guidance": "Guidance", "kf_interval": "The keyframe interval", "short_side": "The working size",
          "loras": "The LoRA list", "variants": "The variant prompts"}


@dataclass(frozen=True)
class EditForm:
    """What the prompt panel holds: some of the edit parameters (bridge/wire/edit_params.py), and the model."""

    prompt: str = ""
    negative_prompt: str = ""  # empty: the server's default negative prompt
    seed: int = _default("seed")
    steps: int = _default("steps")
    guidance: float = _default("guidance")
    kf_interval: int = _default("kf_interval")
    short_side: int = _default("short_side")
    model: str = ""  # empty: the server's default model
    loras: str = ""  # "path:scale, path:scale": the form's one line for the `loras` list
    # More prompts edited in the same job (`params.variants`): one result each, side by side.
    variants: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A preset file or a history row gives a list; the form keeps a tuple (it is frozen).
        object.__setattr__(self, "variants", tuple(str(v) for v in self.variants))

    def params(self) -> dict:
        """The job's `params`: every value, so the history says exactly what made a version."""
        values = {"prompt": self.prompt.strip(), "seed": self.seed, "steps": self.steps, "guidance": self.guidance,
                  "kf_interval": self.kf_interval, "short_side": self.short_side,
                  # The panel always shows the edit as it forms: about ten previews a job.
                  "preview_every": max(1, self.steps // 10)}
        if self.negative_prompt.strip():
            values["negative_prompt"] = self.negative_prompt.strip()
        if self.loras.strip():
            values["loras"] = list(parse_lora_list(self.loras))
        # An empty variant box is one the user added and left blank: nothing to edit, not an error.
        variants = [v.strip() for v in self.variants if v.strip()]
        if variants:
            values["variants"] = variants
        return values

    @property
    def prompts(self) -> list[str]:
        """The prompts this form submits, in variant order (the first is `prompt`)."""
        return [self.prompt.strip(), *self.params().get("variants", [])]

    @classmethod
    def from_params(cls, params: dict, model: str | None = None) -> EditForm:
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in params.items() if k in names}
        if isinstance(known.get("loras"), (list, tuple)):
            known["loras"] = ", ".join(known["loras"])
        return cls(**known, model=model or "")

    def problem(self) -> str:
        """Why this form cannot be submitted, in one sentence (the server's, bridge/wire/edit_params.py); ''
        when it can."""
        found = problems(self.params(), lambda option: LABELS.get(option.name, option.name))
        return next(iter(found.values()), "")

    @staticmethod
    def spin_range(name: str) -> tuple[float, float]:
        """The bounds of the spin box for a numeric field."""
        return form_range(name)


class PresetStore(QObject):
    changed = Signal()

    def __init__(self, path: Path, parent: QObject | None = None):
        super().__init__(parent)
        self.path = path
        self.presets: dict[str, EditForm] = {}
        self.problem = ""
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            names = {f.name for f in fields(EditForm)}
            self.presets = {str(k): EditForm(**{f: v for f, v in dict(d).items() if f in names}) for k, v in raw.items()
                            for d in [v]}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            # Keep the file as it is (it is the user's); say so once, start with none.
            self.problem = f"The prompt presets in {self.path} cannot be read ({exc}); fix or remove that file."

    def names(self) -> list[str]:
        return sorted(self.presets, key=str.lower)

    def save(self, name: str, form: EditForm) -> None:
        name = name.strip()
        if not name:
            raise ValueError("A preset needs a name.")
        self.presets[name] = form
        self._write()

    def delete(self, name: str) -> None:
        if self.presets.pop(name, None) is not None:
            self._write()

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename: a crash never leaves half a presets file
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".presets-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({k: asdict(v) for k, v in self.presets.items()}, f, indent=2)
        os.replace(tmp, self.path)
        self.changed.emit()
