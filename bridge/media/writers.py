"""Writing results in formats editors import directly, never leaving half a file.

The output spec picks the format: `.mp4` is H.264, `.mov` is ProRes 422 HQ, and a
printf pattern (`frames/frame_%06d.png`) or a folder is an image sequence numbered
with source frame numbers, so a sequence of frames 10..29 lines up with the source.

A movie is encoded into a hidden sibling (`.name.partial.mp4`) and renamed into
place on close; images are written under hidden temporary names and renamed one by
one. On failure or abort everything this writer made is removed, so a file with the
final name is always a finished one.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import numpy as np
from PIL import Image

from bridge.media.colour import output_tags, rgb_to_frame
from bridge.media.errors import MediaError
from bridge.media.clip import ClipInfo
from bridge.media.timecode import offset_timecode

OutputKind = Literal["mp4", "mov", "images"]

_MOVIE_SUFFIXES: dict[str, OutputKind] = {".mp4": "mp4", ".mov": "mov"}
_IMAGE_SUFFIXES = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF"}
_FRAME_NUMBER = re.compile(r"%(0?\d*)d")
_DEFAULT_PATTERN = "frame_%06d.png"
_FORMATS_HINT = "use .mp4, .mov, or an image-sequence pattern like frames/%06d.png"


@dataclass(frozen=True)
class OutputSpec:
    """What an output argument means: a movie file or an image-sequence pattern."""

    kind: OutputKind
    path: Path  # the movie file, or the pattern with one %d in its file name


def parse_output_spec(out: str | Path) -> OutputSpec:
    """Classify an output argument without touching the disk beyond `is_dir`."""
    text = os.fspath(out)
    if not text:
        raise MediaError(f"The output path is empty: {_FORMATS_HINT}.")
    path = Path(text)
    suffix = path.suffix.lower()
    if text.endswith(("/", os.sep)):
        return OutputSpec("images", path / _DEFAULT_PATTERN)
    if path.is_dir():
        if suffix in _MOVIE_SUFFIXES:
            # A folder named like a movie is almost surely a slip; refuse to guess.
            raise MediaError(
                f"Output {text} is an existing folder: give a new file name ending in {suffix}, "
                "or end the path with / for an image sequence."
            )
        return OutputSpec("images", path / _DEFAULT_PATTERN)
    if "%" in path.parent.as_posix():
        raise MediaError(f"Output {text} has a % in its folder name: put the frame-number pattern in the file name only.")
    if _FRAME_NUMBER.search(path.name):
        if suffix not in _IMAGE_SUFFIXES:
            raise MediaError(f"Output {text} is a frame pattern with an unsupported extension: use .png, .tif or .tiff.")
        if len(_FRAME_NUMBER.findall(path.name)) != 1 or "%" in _FRAME_NUMBER.sub("", path.name).replace("%%", ""):
            raise MediaError(f"Output {text} must contain exactly one frame-number pattern like %06d (write a literal % as %%).")
        return OutputSpec("images", path)
    if suffix in _MOVIE_SUFFIXES:
        return OutputSpec(_MOVIE_SUFFIXES[suffix], path)
    if suffix in _IMAGE_SUFFIXES:
        raise MediaError(
            f"Output {text} names a single image but a clip has many frames: "
            f"add a frame-number pattern, like {path.with_name(path.stem + '_%06d' + path.suffix)}."
        )
    raise MediaError(f"Output {text} has an extension this tool cannot write: {_FORMATS_HINT}.")


def _nearest_existing(directory: Path) -> Path:
    current = directory.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_output_writable(out: str | Path) -> None:
    """Fail before any GPU work if the output could not be written at the end.

    Checks the format is one we write and that the target folder exists and is
    writable, or that its nearest existing ancestor is a writable folder to create
    it in. It creates nothing.
    """
    spec = parse_output_spec(out)
    directory = spec.path.parent
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise MediaError(f"Cannot create folder {directory} because {existing} is a file: choose another output folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MediaError(f"Folder {existing} is not writable: choose another output folder or fix its permissions.")


class FrameWriter(ABC):
    """Takes frames in order and leaves either a finished output or nothing.

    Use as a context manager: leaving the block normally closes (finalises) the
    output, leaving it with an exception aborts and removes what was written.
    """

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = size  # (width, height) of the frames `write` accepts
        self.outputs: list[Path] = []  # final paths, filled in by close()
        self.frames_written = 0
        self._state: Literal["open", "closed", "aborted"] = "open"

    def write(self, image: np.ndarray) -> None:
        """Append one H x W x 3 uint8 RGB frame at the output size."""
        if self._state != "open":
            raise RuntimeError(f"write() on a writer that is already {self._state}")
        width, height = self.size
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (height, width, 3):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", type(image).__name__)
            self.abort()
            raise MediaError(
                f"Frame {self.frames_written} is {shape} {dtype} but this output takes "
                f"({height}, {width}, 3) uint8 RGB: resize or convert frames before writing."
            )
        try:
            self._write(np.ascontiguousarray(image))
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise MediaError(f"Writing frame {self.frames_written} failed ({error}): check free disk space and the output folder.") from error
        self.frames_written += 1

    def close(self) -> None:
        """Finalise the output and move it to its final name(s)."""
        if self._state != "open":
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError("No frames were written, so no output was made: check the frame range.")
        try:
            self.outputs = self._close()
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise MediaError(f"Finishing the output failed ({error}): check free disk space and the output folder.") from error
        self._state = "closed"

    def abort(self) -> None:
        """Remove everything this writer wrote; safe to call more than once."""
        if self._state == "aborted":
            return
        self._state = "aborted"
        self.outputs = []
        self._abort()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @abstractmethod
    def _write(self, image: np.ndarray) -> None: ...

    @abstractmethod
    def _close(self) -> list[Path]: ...

    @abstractmethod
    def _abort(self) -> None: ...


def _make_folders(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; return the ones made, outermost first."""
    missing = []
    current = directory.absolute()
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    directory.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_folders(folders: list[Path]) -> None:
    """Remove folders this writer created, innermost first, if they ended up empty."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class _Codec:
    name: str
    pix_fmt: str
    options: dict[str, str]


def _h264_codec(width: int, height: int) -> _Codec:
    """libx264, yuv420p at CRF 16; yuv444p when a side is odd (4:2:0 needs even sides)."""
    try:
        av.codec.Codec("libx264", "w")
    except av.codec.codec.UnknownCodecError as error:
        raise MediaError("This PyAV build has no libx264 H.264 encoder: write a .mov (ProRes) or an image sequence instead.") from error
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return _Codec("libx264", pix_fmt, {"crf": "16", "preset": "medium"})


def _prores_codec() -> _Codec:
    # Profile 3 is 422 HQ; vendor apl0 makes Final Cut and QuickTime treat it as Apple's.
    return _Codec("prores_ks", "yuv422p10le", {"profile": "3", "vendor": "apl0"})


class MovieWriter(FrameWriter):
    """An .mp4 (H.264) or .mov (ProRes 422 HQ) at the source's exact frame rate."""

    def __init__(
        self,
        path: Path,
        kind: Literal["mp4", "mov"],
        frame_rate: Fraction,
        size: tuple[int, int],
        timecode: str | None,
    ) -> None:
        super().__init__(size)
        width, height = size
        self.path = path
        codec = _h264_codec(width, height) if kind == "mp4" else _prores_codec()
        self._made_folders = _make_folders(path.parent)
        self._partial = path.with_name(f".{path.stem}.partial{path.suffix}")
        _remove(self._partial)
        try:
            self._container = av.open(str(self._partial), mode="w", format=kind)
        except (OSError, av.error.FFmpegError) as error:
            _remove_folders(self._made_folders)
            raise MediaError(f"Cannot create {self._partial} ({error}): check the output folder is writable.") from error
        try:
            stream = self._container.add_stream(codec.name, rate=frame_rate, options=codec.options)
            stream.width, stream.height, stream.pix_fmt = width, height, codec.pix_fmt
            context = stream.codec_context
            # One tick per frame keeps 30000/1001 exact through the muxer.
            context.time_base = 1 / frame_rate
            context.gop_size = max(1, round(frame_rate))  # a keyframe a second scrubs well
            context.colorspace, context.color_primaries, context.color_trc = output_tags(height)
            context.color_range = 1  # limited ("MPEG") range, what both codecs expect
            if timecode:
                stream.metadata["timecode"] = timecode
        except BaseException:
            self._abort()
            raise
        self._stream = stream
        self._pix_fmt = codec.pix_fmt

    def _write(self, image: np.ndarray) -> None:
        frame = rgb_to_frame(image, self._pix_fmt)
        frame.pts = self.frames_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def _close(self) -> list[Path]:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        os.replace(self._partial, self.path)
        return [self.path]

    def _abort(self) -> None:
        try:
            self._container.close()
        except Exception:  # closing a broken muxer may fail; the file goes anyway
            pass
        _remove(self._partial)


class ImageSequenceWriter(FrameWriter):
    """PNG or TIFF files named with the source frame number of each frame."""

    def __init__(self, pattern: Path, first_frame: int, size: tuple[int, int]) -> None:
        super().__init__(size)
        self.pattern = pattern
        self.first_frame = first_frame
        self._format = _IMAGE_SUFFIXES[pattern.suffix.lower()]
        self._made_folders = _make_folders(pattern.parent)
        self._written: list[Path] = []

    def _write(self, image: np.ndarray) -> None:
        final = self.pattern.with_name(self.pattern.name % (self.first_frame + self.frames_written))
        partial = final.with_name(f".{final.name}.partial")
        try:
            picture = Image.fromarray(image, mode="RGB")
            if self._format == "PNG":
                picture.save(partial, format="PNG", compress_level=4)
            else:
                picture.save(partial, format="TIFF", compression="tiff_lzw")
            os.replace(partial, final)
        except BaseException:
            _remove(partial)
            raise
        self._written.append(final)

    def _close(self) -> list[Path]:
        return list(self._written)

    def _abort(self) -> None:
        for path in self._written:
            _remove(path)
        self._written.clear()
        _remove_folders(self._made_folders)


def open_writer(
    out: str | Path,
    info: ClipInfo,
    first_frame: int,
    size: tuple[int, int] | None = None,
) -> FrameWriter:
    """Open the writer the output spec asks for, for frames starting at `first_frame`.

    `size` is (width, height) and defaults to the source size. Movies get the source
    start timecode moved on by `first_frame`, so the result sits at the same
    timecode as the source frames it replaces; a timecode we cannot parse is only
    carried when `first_frame` is 0, since moving it would be guesswork.
    """
    check_output_writable(out)
    spec = parse_output_spec(out)
    size = size or (info.width, info.height)
    if spec.kind == "images":
        return ImageSequenceWriter(spec.path, first_frame, size)
    return MovieWriter(spec.path, spec.kind, info.frame_rate, size, _start_timecode(info, first_frame))


def _start_timecode(info: ClipInfo, first_frame: int) -> str | None:
    if not info.start_timecode:
        return None
    try:
        return offset_timecode(info.start_timecode, first_frame, info.frame_rate)
    except ValueError:
        return info.start_timecode if first_frame == 0 else None
