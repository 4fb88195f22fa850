"""Which device runs the model, in which precision, and what it can report about its memory.

CUDA, Apple Silicon (PyTorch's `mps`) and the CPU. Everything device-specific the engine
does goes through here, so nothing CUDA-only runs on the other two. The mps rules were
written from PyTorch's documentation and tested with the device faked: they were not
run on Apple hardware (docs/install.md).
"""

from __future__ import annotations

import torch

from tokenflow.errors import ModelNotFound

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(device: str) -> torch.device:
    """`auto`: a CUDA GPU, else Apple Silicon's GPU (mps), else the CPU."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelNotFound(
            "--device cuda was asked for but this PyTorch has no CUDA GPU: use --device auto or cpu, "
            "or install the CUDA build of torch."
        )
    if device == "mps" and not mps_available():
        raise ModelNotFound(
            "--device mps was asked for but this PyTorch has no Apple Silicon GPU (it needs macOS 12.3+ "
            "on an M-series Mac and PyTorch's macOS build): use --device auto or cpu."
        )
    return torch.device(device)


def choose_dtypes(device: torch.device, vae_force_upcast: bool = True) -> tuple[torch.dtype, torch.dtype]:
    """(unet, vae) dtypes. fp32 on CPU. On a GPU (CUDA or mps) the UNet runs fp16 (never
    bf16: MPS lacks it on older macOS, and its 8-bit mantissa shows as banding). The VAE
    runs fp32 unless its config says fp16 is safe (`force_upcast: false`, e.g. the
    fp16-fixed VAEs): fp16 overflows to NaN in SD's and SDXL's own VAEs (public issue
    #14). The VAE is a small share of the work either way."""
    if device.type not in ("cuda", "mps"):
        return torch.float32, torch.float32
    return torch.float16, (torch.float32 if vae_force_upcast else torch.float16)


def is_gpu(device: torch.device) -> bool:
    """A device with its own fast attention and memory: token budgets and fp16 apply."""
    return device.type in ("cuda", "mps")


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if device.type == "mps":
        return int(torch.mps.driver_allocated_memory())  # mps keeps no peak: what the driver holds now
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif mps_available():
        torch.mps.empty_cache()


def memory_report(device: torch.device) -> tuple[str, int | None]:
    """(a name for the device, its memory in bytes where known) for `doctor`. Apple Silicon
    shares the machine's memory with its GPU: the figure is what PyTorch may use there."""
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return props.name, int(props.total_memory)
    if device.type == "mps":
        limit = int(torch.mps.recommended_max_memory()) if hasattr(torch.mps, "recommended_max_memory") else None
        return "Apple Silicon GPU (mps, memory shared with the CPU)", limit
    return "CPU", None
