from __future__ import annotations

from server.cli import main


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
