"""The inversion cache's float16 layout: exact where the UNet runs in float16, unchanged where it runs in float32."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from tokenflow.cache import InversionCache, compact


def test_a_float16_entry_feeds_a_float16_unet_exactly_what_the_float32_latents_did():
    generator = torch.Generator().manual_seed(0)
    source = torch.randn(4, 4, 8, 8, generator=generator) * 3
    current = torch.randn(4, 4, 8, 8, generator=generator)
    stored = compact({10: source, 20: source}, 20, torch.float16)[10]
    assert stored.dtype == torch.float16
    # What EditLoop does with a source latent: float32 on the device, then the UNet's batch in its dtype.
    assert torch.equal(torch.cat([stored.float(), current]).half(), torch.cat([source, current]).half())


def test_the_first_step_stays_float32_and_a_float32_unet_keeps_everything(tmp_path):
    latents = {t: torch.randn(2, 4, 8, 8) for t in (1, 501, 981)}
    half = compact(latents, 981, torch.float16)
    assert half[981].dtype == torch.float32 and half[981] is latents[981]
    assert half[1].dtype == half[501].dtype == torch.float16
    assert all(x.dtype == torch.float32 for x in compact(latents, 981, torch.float32).values())

    cache = InversionCache(tmp_path)
    cache.put("k", half)
    back = cache.get("k")
    assert back is not None and {t: x.dtype for t, x in back.items()} == {t: x.dtype for t, x in half.items()}
    assert torch.equal(back[1], half[1]) and torch.equal(back[981], latents[981])


def test_an_entry_written_before_the_layout_reads_back_as_float32(tmp_path):
    old = {t: torch.randn(2, 4, 8, 8) for t in (1, 981)}
    save_file({f"t{t}": x for t, x in old.items()}, str(tmp_path / "inversion-old.safetensors"))
    back = InversionCache(tmp_path).get("old")
    assert back is not None and all(torch.equal(back[t], old[t]) and back[t].dtype == torch.float32 for t in old)
