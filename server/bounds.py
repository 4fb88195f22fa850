"""How much a job will need (memory, disk), checked before it is accepted.

The estimates are deliberately simple and on the generous side: they exist to refuse
a job that cannot possibly finish (a million frames, a 100000-pixel working size, a
disk with 200 MB left) with a sentence, before it is queued, not to plan memory to
the byte. The figures come from what the engine keeps per frame (ALGORITHM.md):
the frames at the working size while encoding (float32), the inverted latents of
every sampling step, and the decoded result; and from what the server stores per
frame (a lossless PNG, a proxy) plus the output and the inversion cache.

Host memory has two parts that grow differently (issue 20, item 16: six 8192x8192
frames peaked at 15.8 GB with batch size 6, 5.8 GB with batch size 1):
- what is held for every frame of the job: the frame at the working size (float32) and
  its latents for each step;
- what one batch needs at the *source* size: decoding resizes `batch_size` frames back
  to the source size in float32 and makes their float and 8-bit copies for the writer
  (DECODE_COPIES float32 images per frame of the batch), and reading a frame resizes
  it from the source size (READ_COPIES more).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge.display import format_bytes
from server.disk import FreeSpace
from tokenflow.family import FAMILIES  # torch-free

# Stored frames are lossless PNG (compress level 1); photographic frames come out
# at about half their raw size, flat synthetic ones much smaller. Budget 0.7.
PNG_RATIO = 0.7
PROXY_BYTES = 64 << 10
OUTPUT_RATIO = {"movie": 0.25, "images": 1.0}  # of raw RGB; ProRes HQ ~0.2, PNG/TIFF up to raw
# Kept free beyond a job's estimate, so the database can still record what happens.
DISK_MARGIN_BYTES = 64 << 20


# float32 images at the source size alive per frame of a decode batch (resized, unit float, 8-bit + slack)
DECODE_COPIES = 3
READ_COPIES = 2  # a frame being read: its float copy at the source size, and the resize's output
BASE_MEMORY_BYTES = 2 << 30  # the model, the runtime, the decoder's own buffers


@dataclass(frozen=True)
class Memory:
    """Host memory a job needs, in its parts (bytes)."""

    per_frame: int  # held for every frame of the job (working size)
    per_batch_frame: int  # for each frame of a decode batch (source size)
    fixed: int  # independent of frames and batch
    n_frames: int
    batch: int  # frames decoded together: min(batch_size, n_frames)

    @property
    def total(self) -> int:
        return self.fixed + self.n_frames * self.per_frame + self.batch * self.per_batch_frame


@dataclass(frozen=True)
class Needs:
    memory_bytes: int
    data_bytes: int  # job folder: stored frames, proxies, previews
    cache_bytes: int  # the inversion cache entry
    output_bytes: int


def working_dims(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The engine's working size (aspect kept, sides rounded to 64), without importing torch."""
    scale = short_side / max(1, min(width, height))
    return tuple(max(64, int(round(side * scale / 64)) * 64) for side in (width, height))  # type: ignore[return-value]


# --size 0 works at the model family's own size; the estimate takes the largest (generous side).
LARGEST_NATIVE_SHORT_SIDE = max(f.native_short_side for f in FAMILIES.values())


def memory(n_frames: int, width: int, height: int, short_side: int, steps: int, batch_size: int,
           prompts: int = 1) -> Memory:
    """`prompts`: edited in one pass (params.variants): the inverted latents are shared, each
    prompt has its own running latents and noise estimates (3 latents a frame)."""
    ww, wh = working_dims(width, height, short_side or LARGEST_NATIVE_SHORT_SIDE)
    latent = 4 * (ww // 8) * (wh // 8) * 4  # float32
    source_float = width * height * 3 * 4
    return Memory(per_frame=ww * wh * 3 * 4 + latent * (steps + 2 + 3 * (prompts - 1)),
                  per_batch_frame=DECODE_COPIES * source_float,
                  fixed=BASE_MEMORY_BYTES + READ_COPIES * source_float, n_frames=n_frames,
                  batch=max(1, min(batch_size, n_frames)))


def estimate(n_frames: int, width: int, height: int, short_side: int, steps: int, output_kind: str,
             batch_size: int = 8, prompts: int = 1) -> Needs:
    """Each of `prompts` has its frames stored and written; the inversion cache is shared by them."""
    ww, wh = working_dims(width, height, short_side or LARGEST_NATIVE_SHORT_SIDE)
    latent = 4 * (ww // 8) * (wh // 8) * 4  # float32
    raw = width * height * 3
    return Needs(
        memory_bytes=memory(n_frames, width, height, short_side, steps, batch_size, prompts).total,
        data_bytes=int(prompts * n_frames * (raw * PNG_RATIO + PROXY_BYTES)),
        cache_bytes=n_frames * latent * (steps + 1),
        output_bytes=int(prompts * n_frames * raw * OUTPUT_RATIO.get(output_kind, 1.0)),
    )


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def memory_problem(mem: Memory, width: int, height: int, short_side: int,
                   available: int | None = None) -> str | None:
    """A sentence if the job cannot fit in this machine's memory (80% of it), with the numbers and
    what to lower (batch size, frames, working size), else None."""
    total = physical_memory() if available is None else available
    budget = int(0.8 * total)
    if total <= 0 or mem.total <= budget:
        return None
    ww, wh = working_dims(width, height, short_side or LARGEST_NATIVE_SHORT_SIDE)
    parts = (f"{mem.n_frames} frames of {width}x{height} (working size {ww}x{wh}) with batch size {mem.batch} need "
             f"about {format_bytes(mem.total)} of memory: {format_bytes(mem.n_frames * mem.per_frame)} for the frames "
             f"held at the working size, {format_bytes(mem.batch * mem.per_batch_frame)} to decode {mem.batch} at a "
             f"time at the source size; this machine has {format_bytes(total)} (the job may use "
             f"{format_bytes(budget)}).")
    lower = []
    room = budget - mem.fixed
    batch_fits = (room - mem.n_frames * mem.per_frame) // max(1, mem.per_batch_frame)
    if 1 <= batch_fits < mem.batch:
        lower.append(f"--batch-size {batch_fits}")
    frames_fit = (room - mem.batch * mem.per_batch_frame) // max(1, mem.per_frame)
    if 1 <= frames_fit < mem.n_frames:
        lower.append(f"the --frames range to at most {frames_fit} frames")
    if mem.per_batch_frame >= room:
        lower.append("the source's size (even one frame at a time does not fit)")
    else:
        lower.append("--size (the working size)")
    return parts + " Lower " + ", or ".join(lower) + "."


def disk_problem(needs: Needs, data_root: Path, cache_dir: Path | None, output_dir: Path,
                 free_space: FreeSpace) -> str | None:
    """A sentence naming the first folder without room for the job, else None."""
    wanted: dict[int, tuple[int, list[tuple[str, Path]]]] = {}
    for label, folder, size in (("the data folder", data_root, needs.data_bytes),
                                ("the inversion cache", cache_dir, needs.cache_bytes),
                                ("the output folder", output_dir, needs.output_bytes)):
        if folder is None:
            continue
        dev = _device(folder)
        total, places = wanted.get(dev, (0, []))
        wanted[dev] = (total + size, places + [(label, folder)])
    for total, places in wanted.values():
        free = free_space(places[0][1])
        if free < total + DISK_MARGIN_BYTES:
            where = " and ".join(f"{label} ({folder})" for label, folder in places)
            return (f"The disk holding {where} has {format_bytes(free)} free; this job needs about "
                    f"{format_bytes(total + DISK_MARGIN_BYTES)}.")
    return None


def _device(path: Path) -> int:
    current = Path(path)
    while not current.exists() and current != current.parent:
        current = current.parent
    try:
        return os.stat(current).st_dev
    except OSError:
        return -1
