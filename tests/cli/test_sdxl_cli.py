"""From nothing to an SDXL edit with a LoRA on the command line (make-tiny --family sdxl, then edit);
`doctor` on Apple Silicon (faked)."""

from __future__ import annotations

import torch

from bridge.media import probe
from cli.main import main
from tokenflow.tiny import make_tiny_lora


def test_make_tiny_sdxl_then_edit_with_a_lora_end_to_end(shipped_clip, tmp_path, tiny_model_dir, capsys):
    model = tmp_path / "tiny-sdxl"
    assert main(["models", "make-tiny", "--family", "sdxl", str(model)]) == 0
    assert (model / "text_encoder_2").is_dir() and (model / "tokenizer_2" / "vocab.json").exists()
    style = make_tiny_lora(model, tmp_path / "loras" / "style.safetensors")
    out = tmp_path / "out.mp4"
    common = ["edit", str(shipped_clip), "--size", "64", "--steps", "2", "-p", "ink", "--frames", "0:3",
              "--model", str(model), "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--lora", f"{style}:0.8", "-o", str(out)]) == 0
    info = probe(out)
    assert (info.frame_count, info.width, info.height) == (4, 176, 144)

    # An SD LoRA on the SDXL model: refused with a sentence, no output written.
    wrong = make_tiny_lora(tiny_model_dir, tmp_path / "loras" / "sd-style.safetensors")
    capsys.readouterr()
    refused = tmp_path / "refused.mp4"
    assert main([*common, "--lora", str(wrong), "-o", str(refused)]) != 0
    err = capsys.readouterr().err
    assert "sd-style.safetensors was trained for" in err and "Traceback" not in err
    assert not refused.exists()


def test_doctor_reports_the_apple_gpu_and_its_memory(monkeypatch):
    from cli.doctor import check_gpu

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.mps, "recommended_max_memory", lambda: 16 << 30, raising=False)
    check = check_gpu(torch)
    assert "Apple Silicon GPU" in check.detail and "16" in check.detail and "--device auto uses it" in check.detail
    assert "not on a Mac" in check.advice


def test_an_editors_handoff_carries_loras_to_the_job_as_the_wire_checks_them():
    from bridge.editors.handoff import ClipRef, HandoffRequest
    from bridge.editors.handoff_jobs import job_spec
    from bridge.wire.edit_params import complete

    request = HandoffRequest.from_json(HandoffRequest(
        clips=[ClipRef(media="/clips/a.mov", first=0, last=9, frame_rate="25")], mode="submit", prompt="ink",
        params={"loras": ["/styles/ink.safetensors:0.8", "someone/grain-lora"]}).to_json())
    spec = job_spec(request.clips[0], request, "/out/a.mov")
    assert complete(spec.params)["loras"] == ("/styles/ink.safetensors:0.8", "someone/grain-lora")
