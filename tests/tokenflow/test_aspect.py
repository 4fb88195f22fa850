"""Exact aspect ratio (tokenflow/aspect.py): circles on a synthetic test card stay circles
through scale, reflect pad, crop and resize back, within one pixel, at every aspect an
editor meets; and the engine does exactly that end to end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.make_params import make_params
from tokenflow.aspect import LATENT_MULTIPLE, crop, geometry, pad
from tokenflow.cache import inversion_key
from tokenflow.events import FrameReady, Preview
from tokenflow.frames import decode_latents, to_model_input, to_uint8

# (source width, height, --size): 4:3 that 64-rounding stretched 4%, QCIF at small sizes
# (it became square), 9:16 phone footage, 2.39:1 scope.
ASPECTS = [(768, 576, 512), (176, 144, 64), (176, 144, 128), (360, 640, 128), (478, 200, 128), (2048, 858, 512)]


def card(width: int, height: int) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """White discs on black spread over the frame (corners too); returns the card and (cx, cy, r)."""
    r = min(width, height) * 0.16
    discs = [(fx * width, fy * height, r) for fx, fy in ((0.5, 0.5), (0.2, 0.25), (0.8, 0.75), (0.2, 0.75))]
    y, x = np.mgrid[0:height, 0:width] + 0.5
    image = np.zeros((height, width, 3), np.uint8)
    for cx, cy, radius in discs:
        image[(x - cx) ** 2 + (y - cy) ** 2 <= radius**2] = 255
    return image, discs


def measure(image: np.ndarray, cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    """(centre x, centre y, width, height) of the disc near (cx, cy), from its brightness:
    sub-pixel, so resampling blur does not move it."""
    x0, x1 = int(max(0, cx - 1.5 * r)), int(min(image.shape[1], cx + 1.5 * r))
    y0, y1 = int(max(0, cy - 1.5 * r)), int(min(image.shape[0], cy + 1.5 * r))
    weight = image[y0:y1, x0:x1, 0].astype(np.float64) / 255.0
    total = weight.sum()
    y, x = np.mgrid[y0:y1, x0:x1] + 0.5
    mx, my = (weight * x).sum() / total, (weight * y).sum() / total
    # Its longest chord along x and along y: a blur along a line keeps the line's sum.
    return mx, my, float(weight.sum(axis=1).max()), float(weight.sum(axis=0).max())


@pytest.mark.parametrize("width, height, short", ASPECTS)
def test_geometry_keeps_the_aspect_and_pads_to_the_model_multiple(width, height, short):
    geo = geometry(width, height, short)
    cw, ch = geo.content
    assert min(cw, ch) == short
    assert abs(cw * height / width - ch) <= 0.5 and abs(ch * width / height - cw) <= 0.5 + width / height
    assert all(side % LATENT_MULTIPLE == 0 for side in geo.padded)
    left, right, top, bottom = geo.pads
    assert 0 <= min(geo.pads) and left + right < LATENT_MULTIPLE and top + bottom < LATENT_MULTIPLE
    assert abs(left - right) <= 1 and abs(top - bottom) <= 1  # centred


def test_the_sizes_an_editor_reads():
    assert geometry(768, 576, 512).content == (683, 512) and geometry(768, 576, 512).padded == (704, 512)
    assert geometry(176, 144, 64).content == (78, 64) and geometry(176, 144, 64).padded == (128, 64)
    assert geometry(1080, 1920, 512).content == (512, 910) and geometry(1080, 1920, 512).padded == (512, 960)
    assert geometry(512, 512, 512).pads == (0, 0, 0, 0)


def test_pad_reflects_and_crop_takes_it_away_exactly():
    geo = geometry(176, 144, 64)
    content = torch.rand(2, 3, geo.content[1], geo.content[0])
    padded = pad(content, geo)
    assert padded.shape[-2:] == (geo.padded[1], geo.padded[0])
    assert torch.equal(crop(padded, geo), content)
    left = geo.pads[0]
    # Reflection: the column just left of the content mirrors the content's second column.
    assert torch.equal(padded[..., left - 1], content[..., 1])


@pytest.mark.parametrize("width, height, short", ASPECTS)
def test_circles_stay_circles_through_the_round_trip(width, height, short):
    """Source -> working content -> padded -> (the model) -> cropped -> source size: every
    disc keeps its centre and its diameters within one source pixel."""
    image, discs = card(width, height)
    geo = geometry(width, height, short)
    working = pad(to_model_input(image, geo.content), geo)
    working_image = to_uint8(crop(working, geo))[0]
    back = to_uint8(crop(working, geo), geo.source)[0]
    assert back.shape == image.shape
    scale = geo.content[0] / width
    for cx, cy, r in discs:
        sx, sy, sw, sh = measure(image, cx, cy, r)
        bx, by, bw, bh = measure(back, cx, cy, r)
        assert abs(bx - sx) <= 1 and abs(by - sy) <= 1
        assert abs(bw - sw) <= 1 and abs(bh - sh) <= 1
        assert abs(bw - bh) <= 1  # round, not an ellipse
        # At the working size too: what the model sees is round.
        _, _, ww, wh = measure(working_image, cx * scale, cy * geo.content[1] / height, r * scale)
        assert abs(ww - wh) <= 1


def test_the_old_rounding_would_fail_this_test():
    """The test can fail: stretching 768x576 to 704x512 makes a disc 4% wider than tall."""
    image, discs = card(768, 576)
    stretched = to_uint8(to_model_input(image, (704, 512)), (768, 576))[0]
    squashed = to_uint8(to_model_input(stretched, (704, 512)), None)[0]
    cx, cy, r = discs[0]
    _, _, w, h = measure(squashed, cx * 704 / 768, cy * 512 / 576, r)
    assert abs(w - h) > 1


def test_engine_edits_padded_frames_and_returns_the_source_size(tiny_engine):
    """End to end with the tiny model at 176x144, --size 64: the VAE encoder is given the
    content reflect-padded to 128x64 with round discs in it, the decoder's pad is cropped
    away, and every frame and preview comes back with the source's aspect."""
    image, discs = card(176, 144)
    vae = tiny_engine.model.vae
    seen: list[torch.Tensor] = []
    encode = vae.encode

    def spying(x, *args, **kwargs):
        seen.append(x.detach().clone())
        return encode(x, *args, **kwargs)

    vae.encode = spying
    try:
        events: list = []
        params = make_params(prompt="a red ball", steps=2, short_side=64, kf_interval=2, preview_every=1)
        stats = tiny_engine.edit([image] * 3, 3, params, on_event=events.append)
    finally:
        del vae.encode
    geo = geometry(176, 144, 64)
    assert stats.working_size == (128, 64) and stats.content_size == (78, 64)
    model_input = seen[0]
    assert model_input.shape[-2:] == (64, 128)
    assert torch.equal(pad(crop(model_input, geo), geo), model_input)  # the pad is a reflection
    working = to_uint8(crop(model_input[:1], geo))[0]
    for cx, cy, r in discs:
        _, _, w, h = measure(working, cx * 78 / 176, cy * 64 / 144, r * 78 / 176)
        assert abs(w - h) <= 1
    frames = [e.image for e in events if isinstance(e, FrameReady)]
    assert [f.shape for f in frames] == [(144, 176, 3)] * 3
    preview = next(e for e in events if isinstance(e, Preview)).images[0]
    assert abs(preview.shape[1] / preview.shape[0] - 176 / 144) < 0.05


def test_decode_crops_before_resizing(tiny_engine):
    model = tiny_engine.model
    geo = geometry(176, 144, 64)
    latents = torch.randn(1, 4, geo.padded[1] // 8, geo.padded[0] // 8)
    with torch.no_grad():
        decoded = model.vae.decode(latents / model.vae_scale).sample
    expected = to_uint8(crop(decoded, geo), geo.source)[0]
    (got,) = decode_latents(model.vae, latents, model.vae_scale, geo.source, geo=geo)
    assert np.array_equal(got, expected)


def test_inversion_key_tells_padded_from_stretched():
    common = ("digest", "model", (0, 1), {}, "", "fp32")
    keys = {inversion_key(common[0], common[1], tuple(geometry(*size, short).key()), *common[2:])
            for size, short in [((768, 576), 512), ((770, 576), 512), ((768, 576), 448), ((704, 512), 512)]}
    assert len(keys) == 4  # 768x576 and 704x512 share the padded size, not the picture
