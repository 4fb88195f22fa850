"""Device choice and precision per device, Apple Silicon (mps) faked: it cannot run here."""

from __future__ import annotations

import pytest
import torch

from tokenflow import devices
from tokenflow.errors import ModelNotFound
from tokenflow.keyframes import auto_max_joint_keyframes


def fake(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, expected", [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")])
def test_auto_picks_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    fake(monkeypatch, cuda, mps)
    assert devices.resolve_device("auto").type == expected


def test_asking_for_a_device_this_torch_lacks_says_what_to_use(monkeypatch):
    fake(monkeypatch, False, False)
    with pytest.raises(ModelNotFound, match="no Apple Silicon GPU.*--device auto or cpu"):
        devices.resolve_device("mps")
    with pytest.raises(ModelNotFound, match="no CUDA GPU"):
        devices.resolve_device("cuda")


def test_precision_per_device_never_bfloat16_and_the_vae_rule_kept():
    for gpu in ("cuda", "mps"):
        dev = torch.device(gpu)
        assert devices.choose_dtypes(dev, vae_force_upcast=True) == (torch.float16, torch.float32)
        assert devices.choose_dtypes(dev, vae_force_upcast=False) == (torch.float16, torch.float16)
    assert devices.choose_dtypes(torch.device("cpu"), vae_force_upcast=False) == (torch.float32, torch.float32)


def test_nothing_cuda_only_runs_for_mps_or_cpu(monkeypatch):
    def cuda_called(*args, **kwargs):
        raise AssertionError("a torch.cuda call on a non-CUDA device")

    for name in ("synchronize", "reset_peak_memory_stats", "max_memory_allocated", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, cuda_called)
    monkeypatch.setattr(torch.mps, "synchronize", lambda: None)
    monkeypatch.setattr(torch.mps, "driver_allocated_memory", lambda: 123)
    for dev in (torch.device("cpu"), torch.device("mps")):
        devices.reset_peak_memory(dev)
        devices.synchronize(dev)
    assert devices.peak_memory_bytes(torch.device("mps")) == 123
    assert devices.peak_memory_bytes(torch.device("cpu")) is None


def test_mps_keeps_the_smaller_joint_attention_budget():
    assert auto_max_joint_keyframes("mps", 64, 64) == auto_max_joint_keyframes("cpu", 64, 64)
    assert auto_max_joint_keyframes("cuda", 64, 64) > auto_max_joint_keyframes("mps", 64, 64)

