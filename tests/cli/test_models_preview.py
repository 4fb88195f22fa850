"""The tiny autoencoders for previews in the model registry, one per model family (TAESD
for SD 1.x/2.x, TAESDXL for SDXL): found when registered with `tokenflow models add DIR`
or pulled into the hub cache (`tokenflow models pull madebyollin/taesd` or
`madebyollin/taesdxl`, here against a stand-in hub), and only then, each for its own family."""

from __future__ import annotations

import pytest

from cli.main import main
from server.model_registry import find_preview_decoders
from tests.cli.test_models import _list_json, _pull_subprocess, fake_hub_repo, places  # noqa: F401  (fixture)
from tokenflow.preview_decoder import make_random_taesd


def test_found_in_the_hub_cache_or_registered_and_otherwise_not(places, tmp_path, capsys):  # noqa: F811
    hub, config = places
    assert find_preview_decoders(config, hub) == {}
    taesd = make_random_taesd(tmp_path / "taesd")
    snapshot = fake_hub_repo(hub, "madebyollin/taesd", taesd)
    assert find_preview_decoders(config, hub) == {"sd": str(snapshot)}  # TAESD serves SD only
    listed = {m["id"]: m for m in _list_json(capsys)["models"]}["madebyollin/taesd"]
    assert not listed["supported"] and "previews" in listed["note"]  # offered for previews, not as --model
    assert listed["family"] == "sd"
    mine = make_random_taesd(tmp_path / "my-taesd", seed=1)
    assert main(["models", "add", str(mine), "--name", "my-taesd"]) == 0
    assert find_preview_decoders(config, hub) == {"sd": str(mine.resolve())}  # a registered one comes first


def test_taesdxl_is_found_for_sdxl_beside_taesd_for_sd(places, tmp_path, capsys):  # noqa: F811
    hub, config = places
    xl = fake_hub_repo(hub, "madebyollin/taesdxl", make_random_taesd(tmp_path / "taesdxl"))
    assert find_preview_decoders(config, hub) == {"sdxl": str(xl)}
    sd = fake_hub_repo(hub, "madebyollin/taesd", make_random_taesd(tmp_path / "taesd", seed=1))
    assert find_preview_decoders(config, hub) == {"sd": str(sd), "sdxl": str(xl)}
    listed = {m["id"]: m["family"] for m in _list_json(capsys)["models"]}
    assert listed["madebyollin/taesdxl"] == "sdxl" and listed["madebyollin/taesd"] == "sd"
    # A registered one serves the family its name says (the files cannot tell TAESD from TAESDXL).
    mine = make_random_taesd(tmp_path / "decoder-folder", seed=2)
    assert main(["models", "add", str(mine), "--name", "studio-taesdxl"]) == 0
    assert find_preview_decoders(config, hub) == {"sd": str(sd), "sdxl": str(mine.resolve())}


@pytest.mark.parametrize(("repo", "family"), [("madebyollin/taesd", "sd"), ("madebyollin/taesdxl", "sdxl")])
def test_pull_fetches_only_its_config_and_weights(places, tmp_path, capsys, repo, family):  # noqa: F811
    from tests.fake_hub import FakeHub

    hub, config = places
    taesd = make_random_taesd(tmp_path / "taesd")
    extra = {"taesd_decoder.pth": b"p" * 100, "README.md": b"# TAESD"}
    with FakeHub.from_folder(repo, taesd, extra) as fake:
        done = _pull_subprocess(fake.endpoint, repo)
        assert done.returncode == 0, done.stderr
        assert fake.downloaded() == {"config.json", "diffusion_pytorch_model.safetensors"}
    found = find_preview_decoders(config, hub)
    assert list(found) == [family] and found[family].startswith(str(hub))
