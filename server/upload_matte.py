"""A job's matte when it is not a file the server reads: uploaded frames (`params.matte`
`"upload:ID"`), or the alpha of an uploaded RGBA source (`"alpha"`). docs/protocol.md,
"Mattes as uploaded frames".

A matte upload is an upload like a source's (server/uploads.py): any of 1, 3 or 4
channels, any sample type. Its frame N goes with the source's frame N (the host's frame
numbers, as for the source upload); its size may differ from the source's: the engine
resizes it as it does a file matte (tokenflow/matte.py). What a frame gives:
- 1 channel: that channel;
- 4 channels (RGBA): the alpha, as a file matte with alpha gives its alpha;
- 3 channels (RGB): the Rec. 709 luma, as a file matte without alpha.
uint8 frames stay uint8 (8-bit RGB luma rounded as bridge/media/matte.py rounds it);
uint16 and float32 frames become float32 in [0, 1], keeping their precision for the
feather and the resize.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bridge.media.matte import LUMA, SOURCE_ALPHA, read_matte
from server import upload_source
from server.resolved_job import ResolvedJob
from server.uploads import Description, UploadError, Uploads

WHERE = "body.spec.params.matte"


def check(upload_id: str, uploads: Uploads | None, owner: str, first: int, last: int) -> tuple[Path, str]:
    """(folder, digest) of the matte upload a job names, complete, the client's own and covering
    frames first..last; UploadError (field body.spec.params.matte) otherwise."""
    if uploads is None:
        raise UploadError("unknown_upload", "This server takes no uploads here.",
                          "Give the matte as a file path on the server instead.", WHERE)
    try:
        desc, folder, digest = uploads.source(upload_id, owner, WHERE)
    except UploadError as exc:
        if exc.code == "forbidden":  # another client's upload is not there, as for a source
            raise UploadError("unknown_upload", f"There is no upload {upload_id!r} on this server for this client.",
                              "Upload the matte's frames yourself (upload_open, upload_frames).", WHERE) from None
        raise
    if first < desc.first or last > desc.last:
        raise UploadError("bad_range", f"The matte upload {upload_id} holds frames {desc.first}..{desc.last}; the "
                          f"job edits frames {first}..{last}.", "Upload a matte frame for every frame the job edits, "
                          "numbered with the host's frame numbers as the source.", WHERE)
    return folder, digest


def check_source_alpha(source: Description) -> None:
    """`"alpha"` on an uploaded source: it must have an alpha channel."""
    if source.channels != 4:
        raise UploadError("bad_field", f"matte \"alpha\" reads the source's alpha, and upload {source.upload} has "
                          f"{source.channels} channels (no alpha).", "Upload the source as RGBA (channels 4), or "
                          "upload the matte on its own and name it \"upload:ID\".", WHERE)


def matte_channel(pixels: np.ndarray) -> np.ndarray:
    """One uploaded frame (H x W x channels, as sent) -> H x W: its matte (see the module's note)."""
    channels = pixels.shape[2]
    if channels == 3:
        if pixels.dtype == np.uint8:
            return np.rint(pixels.astype(np.float32) @ LUMA).clip(0, 255).astype(np.uint8)
        luma = (pixels.astype(np.float32) / _full_scale(pixels.dtype)) @ LUMA
        return np.nan_to_num(luma, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1).astype(np.float32)
    channel = pixels[..., 3 if channels == 4 else 0]
    if channel.dtype == np.uint8:
        return np.ascontiguousarray(channel)
    unit = channel.astype(np.float32) / _full_scale(channel.dtype)
    return np.nan_to_num(unit, nan=0.0, posinf=1.0, neginf=0.0).clip(0, 1)


def _full_scale(dtype: np.dtype) -> float:
    return 65535.0 if dtype == np.uint16 else 1.0


def uploaded(folder: Path, first: int, last: int) -> Iterator[np.ndarray]:
    """Frames first..last of a matte upload as H x W mattes."""
    desc = upload_source.description(folder)
    upload_source.touch(folder)
    for frame in range(first, last + 1):
        yield matte_channel(upload_source.read_pixels(folder, desc, frame))


def source_alpha(folder: Path, first: int, last: int) -> Iterator[np.ndarray]:
    """The alpha of an RGBA source upload, frames first..last, as H x W uint8."""
    for frame in range(first, last + 1):
        alpha = upload_source.alpha(folder, frame)
        if alpha is None:  # checked at submit; an upload replaced since would land here
            raise upload_source.UploadGone(f"The source upload {folder.name} has no alpha channel any more.")
        yield alpha[..., 0]


def job_matte(spec: ResolvedJob, matte: str, first: int) -> Iterator[np.ndarray]:
    """The matte of a job being run, whatever its form: an upload, an uploaded source's alpha, a file."""
    if spec.matte_input is not None:
        return uploaded(Path(spec.matte_input), first, spec.last)
    if spec.upload is not None and matte == SOURCE_ALPHA:
        return source_alpha(Path(spec.input), first, spec.last)
    return read_matte(matte, spec.input, first, spec.last)
