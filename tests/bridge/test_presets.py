"""The export preset table and how output paths and presets fit together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.media import MediaError, parse_output_spec
from bridge.media.presets import PRESETS, ExportPreset, get_preset, preset_for_output

REPO = Path(__file__).resolve().parents[2]


def test_table_holds_the_issue_presets() -> None:
    expected = {
        "prores_422_hq": ("movie", ".mov", 10), "prores_4444": ("movie", ".mov", 10),
        "dnxhr_hqx": ("movie", ".mov", 10), "h264": ("movie", ".mp4", 8),
        "png8": ("images", ".png", 8), "png16": ("images", ".png", 16),
        "tiff16": ("images", ".tif", 16), "exr_half": ("images", ".exr", 16),
    }
    assert {name: (p.kind, p.extension, p.bit_depth) for name, p in PRESETS.items()} == expected
    for name, preset in PRESETS.items():
        assert isinstance(preset, ExportPreset) and preset.name == name
        assert preset.label and preset.description and preset.editors


def test_get_preset_is_forgiving_about_spelling_and_clear_when_unknown() -> None:
    assert get_preset("ProRes-422-HQ") is PRESETS["prores_422_hq"]
    with pytest.raises(ValueError, match="Unknown export format 'avi'.*prores_422_hq.*exr_half"):
        get_preset("avi")


@pytest.mark.parametrize(
    ("out", "name"),
    [("a.mp4", "h264"), ("a.MOV", "prores_422_hq"), ("seq/", "png8"), ("f_%04d.png", "png8"),
     ("f_%04d.tiff", "tiff16"), ("f_%04d.exr", "exr_half")],
)
def test_preset_for_output_keeps_the_extension_rules(out: str, name: str) -> None:
    assert preset_for_output(out).name == name


def test_output_and_preset_must_agree(tmp_path: Path) -> None:
    spec = parse_output_spec(f"{tmp_path}/seq/", "exr_half")
    assert spec.kind == "images" and spec.path.name == "frame_%06d.exr"
    assert parse_output_spec(tmp_path / "a.mov", "dnxhr_hqx").preset.name == "dnxhr_hqx"
    assert parse_output_spec(tmp_path / "plates", "tiff16").path == tmp_path / "plates" / "frame_%06d.tif"
    assert parse_output_spec(tmp_path / "s_%d.png", "png16").path.name == "s_%06d.png"  # fixed padding
    with pytest.raises(MediaError, match="name it a.mov"):
        parse_output_spec(tmp_path / "a.mp4", "prores_4444")
    with pytest.raises(MediaError, match="writes a movie file"):
        parse_output_spec(f"{tmp_path}/seq/", "h264")
    with pytest.raises(MediaError, match="writes .exr files"):
        parse_output_spec(tmp_path / "f_%04d.png", "exr_half")
    with pytest.raises(MediaError, match="is an image sequence"):
        parse_output_spec(tmp_path / "a.mov", "png16")


def test_formats_command_lists_every_preset() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", "cli", "formats", "--json"], capture_output=True, text=True,
                         cwd=REPO, env=env, check=True).stdout
    assert [p["name"] for p in json.loads(out)] == list(PRESETS)
    text = subprocess.run([sys.executable, "-m", "cli", "formats"], capture_output=True, text=True,
                          cwd=REPO, env=env, check=True).stdout
    assert "DNxHR HQX" in text and "needs pictures of at least 256x120" in text


def test_the_table_loads_without_pyav() -> None:
    """Editor scripts and the panel read the presets without loading FFmpeg."""
    code = "import sys, bridge.media.presets, cli.media; print('av' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, check=True).stdout
    assert out.strip() == "False"
