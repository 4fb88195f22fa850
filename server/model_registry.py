"""The user's model registry: local models known by a short name, and what `models pull` downloaded.

A small JSON file in the user config directory (`models.json`). Names registered with
`tokenflow models add` stand for a local diffusers folder or a single checkpoint file;
`--model NAME` then works in `tokenflow edit` and `tokenflow serve`. The `pulled` part
records which hub repositories `tokenflow models pull` brought into the Hugging Face
cache, because only those may be deleted by `tokenflow models remove`: anything else
in that cache belongs to the user or to other tools.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

REGISTRY_FILE = "models.json"
REGISTRY_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class RegistryError(Exception):
    """The registry cannot do what was asked; the message says what to do."""


@dataclass(frozen=True)
class LocalModel:
    name: str
    path: Path
    kind: str  # "folder" (diffusers), "checkpoint" (.safetensors / .ckpt) or "lora" (listed, not a --model)
    added: float


@dataclass
class Registry:
    file: Path
    local: dict[str, LocalModel] = field(default_factory=dict)
    pulled: dict[str, float] = field(default_factory=dict)  # hub repo id -> when the pull started

    @classmethod
    def load(cls, config_dir: Path) -> Registry:
        file = config_dir / REGISTRY_FILE
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(file)
        except (OSError, ValueError) as exc:
            raise RegistryError(f"The model registry {file} cannot be read ({exc}); fix or delete that file "
                                "(it only lists names; no model files are in it).") from exc
        local = {name: LocalModel(name, Path(v["path"]), v.get("kind", "folder"), float(v.get("added", 0)))
                 for name, v in raw.get("local", {}).items()}
        return cls(file, local, {k: float(v) for k, v in raw.get("pulled", {}).items()})

    def save(self) -> None:
        data = {
            "version": REGISTRY_VERSION,
            "local": {m.name: {"path": str(m.path), "kind": m.kind, "added": m.added} for m in self.local.values()},
            "pulled": self.pulled,
        }
        self.file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.file.with_name(self.file.name + ".partial")
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, self.file)  # never a half-written registry

    def add(self, name: str, path: Path, kind: str) -> LocalModel:
        if not NAME_RE.match(name):
            raise RegistryError(f"{name!r} cannot be a model name: use letters, digits, '.', '_' or '-' "
                                "(no '/', which hub ids use), at most 64 characters; pass --name.")
        if name in self.local:
            raise RegistryError(f"A model named {name!r} is already registered ({self.local[name].path}); "
                                "choose another --name, or `tokenflow models remove` it first.")
        model = LocalModel(name, path, kind, time.time())
        self.local[name] = model
        return model


def resolve_model(spec: str, config_dir: Path | None = None) -> str:
    """What to load for `--model SPEC`: a registered name becomes its path; anything else is passed on."""
    if not NAME_RE.match(spec) or Path(spec).exists():
        return spec  # a hub id, a path, or a folder of that name in the working directory
    from bridge import folders

    try:
        registry = Registry.load(config_dir or folders.config_dir())
    except RegistryError:
        return spec
    model = registry.local.get(spec)
    return str(model.path) if model else spec


# --- the tiny autoencoder for instant previews (tokenflow/preview_decoder.py) ---

PREVIEW_KIND = "autoencoder-tiny"  # a registered AutoencoderTiny folder (`tokenflow models add DIR`)


PREVIEW_FILES: tuple[str, ...] = ("config.json", "diffusion_pytorch_model.safetensors")


def is_tiny_autoencoder_folder(folder: Path) -> bool:
    """A diffusers AutoencoderTiny folder (TAESD's layout): config.json naming the class, and weights."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config.get("_class_name") == "AutoencoderTiny" and any(folder.glob("diffusion_pytorch_model.*"))


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def find_preview_decoders(config_dir: Path | None = None, hub_cache: Path | None = None) -> dict[str, str]:
    """The folders of the tiny autoencoders for previews, by model family ("sd": TAESD,
    "sdxl": TAESDXL); empty when there are none (previews then use the full VAE).

    For each family a registered one first (`tokenflow models add DIR`; the family is told
    by its name, tokenflow/family.py), else its repo in the Hugging Face cache (`tokenflow
    models pull madebyollin/taesd` or `.../taesdxl`). Only found, never downloaded here;
    the engine takes its own family's.
    """
    from bridge import folders
    from tokenflow.family import FAMILIES, family_of_tiny_autoencoder  # torch-free

    found: dict[str, str] = {}
    try:
        registry = Registry.load(config_dir or folders.config_dir())
    except RegistryError:
        registry = None
    if registry is not None:
        for model in sorted(registry.local.values(), key=lambda m: m.added):
            if model.kind == PREVIEW_KIND and is_tiny_autoencoder_folder(model.path):
                found.setdefault(family_of_tiny_autoencoder(model.name).name, str(model.path))
    cache = hub_cache or _hub_cache()
    for family in FAMILIES.values():
        snapshots = cache / ("models--" + family.preview_repo.replace("/", "--")) / "snapshots"
        newest = sorted((p for p in snapshots.glob("*") if is_tiny_autoencoder_folder(p)),
                        key=lambda p: p.stat().st_mtime)
        if newest:
            found.setdefault(family.name, str(newest[-1]))
    return found
