"""The pipelined engine (read-ahead, finisher thread, writer threads) writes what the serial path wrote.

For every export preset the same edit is written twice: through the engine as jobs run it
now (frames finished on the finisher thread, handed to writer threads), and serially from
the edit's final latents with the decode as it was before the pipeline (decode, resize and
convert on one thread, written in order): the files must be byte for byte the same. A writer slowed on purpose holds the engine back:
the frames decoded but not yet written stay bounded.
"""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bridge.media import open_writer, probe, read_frames
from bridge.media.pipeline import FrameSinks
from bridge.media.presets import PRESETS
from tests.make_params import make_params
from tokenflow.aspect import crop, geometry
from tokenflow.events import FrameReady, Progress

SIZE = (256, 144)  # the smallest DNxHR takes is 256x120
FRAMES = 5


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("src") / "clip.mp4"
    w, h = SIZE
    y, x = np.mgrid[0:h, 0:w]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for i in range(FRAMES):
            img = np.stack([(x * 2 + 9 * i) % 256, (y * 3) % 256, (x + y + 20 * i) % 256], -1).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _output(root: Path, name: str) -> Path:
    preset = PRESETS[name]
    return root / (f"{name}{preset.extension}" if preset.is_movie else f"{name}/%06d{preset.extension}")


def _files(root: Path, name: str) -> dict[str, bytes]:
    out = _output(root, name)
    if PRESETS[name].is_movie:
        return {out.name: out.read_bytes()}
    return {p.name: p.read_bytes() for p in sorted(out.parent.iterdir())}


@torch.no_grad()
def _serial_before(engine, size: tuple[int, int]) -> list[np.ndarray]:
    """The decode as the engine did it before the pipeline, written out here on purpose (not
    tokenflow.frames, which the pipeline uses): VAE decode, the pad cropped (tokenflow/aspect.py),
    bicubic resize, float [0, 1] on the host."""
    model = engine.model
    out = []
    for start in range(0, engine.last_latents.shape[0], 2):
        z = engine.last_latents[start : start + 2].to(model.vae.device, model.vae.dtype) / model.vae_scale
        decoded = crop(model.vae.decode(z).sample.float(), geometry(*size, 64))  # the model's pad cut away
        images = F.interpolate(decoded, size=(size[1], size[0]), mode="bicubic",
                               antialias=True, align_corners=False).clamp(-1, 1)
        out += [np.ascontiguousarray(f) for f in ((images + 1.0) * 0.5).permute(0, 2, 3, 1).cpu().numpy()]
    return out


def test_every_preset_is_bit_identical_to_the_serial_path(tiny_engine, source, tmp_path):
    info = probe(source)
    params = make_params(prompt="a watercolour painting", steps=2, short_side=64, batch_size=2)
    piped, serial = tmp_path / "piped", tmp_path / "serial"
    writers = {name: open_writer(_output(piped, name), info, 0, preset=name) for name in PRESETS}
    sinks = FrameSinks({name: writer.write for name, writer in writers.items()})

    def on_event(event) -> None:
        if isinstance(event, FrameReady):
            for name in writers:
                sinks.put(name, event.best_image, event.best_image.nbytes)

    with sinks:
        tiny_engine.edit(read_frames(source, 0, FRAMES - 1), FRAMES, params, on_event=on_event)
    for writer in writers.values():
        writer.close()

    pictures = _serial_before(tiny_engine, SIZE)
    for name in PRESETS:
        with open_writer(_output(serial, name), info, 0, preset=name) as writer:
            for precise in pictures:
                writer.write(precise)
        assert _files(piped, name) == _files(serial, name), name


def test_a_slow_writer_holds_the_engine_back(tiny_engine, source):
    """The frames the VAE has decoded but the writer has not taken stay within the queues' bounds."""
    params = make_params(prompt="a watercolour painting", steps=1, short_side=64, batch_size=1)
    vae = tiny_engine.model.vae
    decoded = [0]
    written = [0]
    ahead: list[int] = []
    real_decode = vae.decode

    def counting_decode(z, *args, **kwargs):
        decoded[0] += z.shape[0]
        return real_decode(z, *args, **kwargs)

    def slow_write(image) -> None:
        time.sleep(0.1)  # a throttled disk: far slower than the tiny VAE decodes
        written[0] += 1
        ahead.append(decoded[0] - written[0])

    frames = list(read_frames(source, 0, FRAMES - 1)) * 3  # 15 frames
    vae.decode = counting_decode
    try:
        with FrameSinks({"output": slow_write}, max_frames=2) as sinks:
            def on_event(event) -> None:
                if isinstance(event, Progress) and event.stage == "edit":
                    decoded[0] = 0  # previews decode too; count the output's decoding only
                if isinstance(event, FrameReady):
                    assert threading.current_thread().name == "tokenflow-finisher"
                    sinks.put("output", event.best_image, event.best_image.nbytes)

            tiny_engine.edit(iter(frames), len(frames), params, on_event=on_event)
    finally:
        vae.decode = real_decode
    assert written[0] == len(frames)
    # 2 chunks waiting for the finisher + 1 being finished + 2 in the writer's queue + 1 being decoded
    assert max(ahead) <= 2 + 1 + 2 + 1, ahead
