"""The tiny autoencoder for previews in the model registry: found when registered with
`tokenflow models add DIR` or pulled into the hub cache (`tokenflow models pull
madebyollin/taesd`, here against a stand-in hub), and only then."""

from __future__ import annotations

from cli.main import main
from server.model_registry import find_preview_decoder
from tests.cli.test_models import _list_json, _pull_subprocess, fake_hub_repo, places  # noqa: F401  (fixture)
from tokenflow.preview_decoder import make_random_taesd


def test_found_in_the_hub_cache_or_registered_and_otherwise_not(places, tmp_path, capsys):  # noqa: F811
    hub, config = places
    assert find_preview_decoder(config, hub) is None
    taesd = make_random_taesd(tmp_path / "taesd")
    snapshot = fake_hub_repo(hub, "madebyollin/taesd", taesd)
    assert find_preview_decoder(config, hub) == str(snapshot)
    listed = {m["id"]: m for m in _list_json(capsys)["models"]}["madebyollin/taesd"]
    assert not listed["supported"] and "previews" in listed["note"]  # offered for previews, not as --model
    mine = make_random_taesd(tmp_path / "my-taesd", seed=1)
    assert main(["models", "add", str(mine), "--name", "my-taesd"]) == 0
    assert find_preview_decoder(config, hub) == str(mine.resolve())  # a registered one comes first


def test_pull_fetches_only_its_config_and_weights(places, tmp_path, capsys):  # noqa: F811
    from tests.fake_hub import FakeHub

    hub, config = places
    taesd = make_random_taesd(tmp_path / "taesd")
    extra = {"taesd_decoder.pth": b"p" * 100, "README.md": b"# TAESD"}
    with FakeHub.from_folder("madebyollin/taesd", taesd, extra) as fake:
        done = _pull_subprocess(fake.endpoint, "madebyollin/taesd")
        assert done.returncode == 0, done.stderr
        assert fake.downloaded() == {"config.json", "diffusion_pytorch_model.safetensors"}
    found = find_preview_decoder(config, hub)
    assert found is not None and found.startswith(str(hub))
