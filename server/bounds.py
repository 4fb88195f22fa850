"""How much a job will need (memory, disk), checked before it is accepted.

The estimates are deliberately simple and on the generous side: they exist to refuse
a job that cannot possibly finish (a million frames, a 100000-pixel working size, a
disk with 200 MB left) with a sentence, before it is queued, not to plan memory to
the byte. The figures come from what the engine keeps per frame (ALGORITHM.md):
the frames at the working size while encoding (float32), the inverted latents of
every sampling step, and the decoded result; and from what the server stores per
frame (a lossless PNG, a proxy) plus the output and the inversion cache.
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


def estimate(n_frames: int, width: int, height: int, short_side: int, steps: int, output_kind: str) -> Needs:
    ww, wh = working_dims(width, height, short_side or LARGEST_NATIVE_SHORT_SIDE)
    latent = 4 * (ww // 8) * (wh // 8) * 4  # float32
    raw = width * height * 3
    memory = n_frames * (ww * wh * 3 * 4 + latent * (steps + 2)) + 4 * raw + (2 << 30)
    return Needs(
        memory_bytes=memory,
        data_bytes=int(n_frames * (raw * PNG_RATIO + PROXY_BYTES)),
        cache_bytes=n_frames * latent * (steps + 1),
        output_bytes=int(n_frames * raw * OUTPUT_RATIO.get(output_kind, 1.0)),
    )


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        return 0


def memory_problem(needs: Needs, n_frames: int, available: int | None = None) -> str | None:
    """A sentence if the job cannot fit in this machine's memory, else None."""
    total = physical_memory() if available is None else available
    if total <= 0 or needs.memory_bytes <= 0.8 * total:
        return None
    per_frame = max(1, (needs.memory_bytes - (2 << 30)) // max(1, n_frames))
    fits = max(0, int((0.8 * total - (2 << 30)) // per_frame))
    return (f"{n_frames} frames at this working size need about {format_bytes(needs.memory_bytes)} of memory; "
            f"this machine has {format_bytes(total)}, enough for about {fits} frames.")


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
