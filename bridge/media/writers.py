"""Writing results in formats editors import directly, never leaving half a file.

An export preset (bridge.media.presets) picks the format; without one the output
path implies it: `.mp4` is H.264, `.mov` ProRes 422 HQ, a folder or `%06d.png`
pattern a PNG sequence. Sequences are numbered with source frame numbers, or from
a start number, with the pattern's fixed zero padding.

Frames come in as H x W x 3 RGB, either uint8 or floating point in [0, 1] (the
VAE decoder's own output); each writer quantises once, to its preset's bit depth,
so a 16-bit PNG or a 10-bit ProRes is not made from an 8-bit intermediate.

Nothing half-written ever carries a final name, and no file the job did not create
is replaced unless the caller passes `overwrite=True`:
- a movie is encoded into a hidden sibling (`.NAME.XXXX.partial.mov`) and, on close,
  linked to its final name (a link fails if that name exists, so nothing is
  clobbered even by a file that appeared meanwhile) and the partial unlinked;
- a sequence is written into a hidden staging folder beside its files and moved
  into place the same way on close, all or nothing.
On failure, abort or cancel everything this writer made is removed, folders too.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Literal

import av
import av.codec.codec
import av.error
import av.video.codeccontext
import av.video.stream
import numpy as np

from bridge.media.audio import AudioTrack, open_audio
from bridge.media.clip import ClipInfo
from bridge.media.colour import ColourTags, chromaticities, default_tags, rgb_to_frame
from bridge.media.errors import MediaError
from bridge.media.presets import PRESETS, ExportPreset, get_preset, image_extensions, preset_for_output
from bridge.media.timecode import offset_timecode

OutputKind = Literal["movie", "images"]

_MOVIE_SUFFIXES = (".mp4", ".mov")
_FRAME_NUMBER = re.compile(r"%(0?\d*)d")
_DEFAULT_STEM = "frame_%06d"
_FORMATS_HINT = "use .mp4, .mov, or an image-sequence pattern like frames/%06d.png (.png, .tif, .exr)"



@dataclass(frozen=True)
class OutputSpec:
    """What an output argument means: a movie file or an image-sequence pattern, in a preset."""

    kind: OutputKind
    path: Path  # the movie file, or the pattern with one %0Nd in its file name
    preset: ExportPreset


def resolve_preset(preset: str | ExportPreset | None) -> ExportPreset | None:
    if preset is None or isinstance(preset, ExportPreset):
        return preset
    try:
        return get_preset(preset)
    except ValueError as error:
        raise MediaError(str(error)) from None


def _fixed_padding(name: str) -> str:
    """A bare %d becomes %06d: every file of a sequence has the same number of digits."""
    return _FRAME_NUMBER.sub(lambda m: m.group(0) if m.group(1) else "%06d", name)


def parse_output_spec(out: str | Path, preset: str | ExportPreset | None = None) -> OutputSpec:
    """Classify an output argument (and check it fits `preset`) without touching the disk beyond `is_dir`."""
    chosen = resolve_preset(preset)
    text = os.fspath(out)
    if not text:
        raise MediaError(f"The output path is empty: {_FORMATS_HINT}.")
    path = Path(text)
    suffix = path.suffix.lower()
    as_folder = text.endswith(("/", os.sep))
    if chosen is not None and not chosen.is_movie and not suffix and "%" not in path.name:
        as_folder = True  # `--format exr -o plates`: a sequence wants a folder
    if not as_folder and path.is_dir():
        if suffix in _MOVIE_SUFFIXES:
            # A folder named like a movie is almost surely a slip; refuse to guess.
            raise MediaError(
                f"Output {text} is an existing folder: give a new file name ending in {suffix}, "
                "or end the path with / for an image sequence."
            )
        as_folder = True
    if as_folder:
        images = chosen or PRESETS["png8"]
        if images.is_movie:
            raise MediaError(
                f"Output {text} is a folder but {images.label} writes a movie file: "
                f"give a file name ending in {images.extension}."
            )
        return OutputSpec("images", path / f"{_DEFAULT_STEM}{images.extension}", images)
    if "%" in path.parent.as_posix():
        raise MediaError(f"Output {text} has a % in its folder name: put the frame-number pattern in the file name only.")
    if _FRAME_NUMBER.search(path.name):
        if suffix not in image_extensions():
            raise MediaError(f"Output {text} is a frame pattern with an unsupported extension: use .png, .tif, .tiff or .exr.")
        if len(_FRAME_NUMBER.findall(path.name)) != 1 or "%" in _FRAME_NUMBER.sub("", path.name).replace("%%", ""):
            raise MediaError(f"Output {text} must contain exactly one frame-number pattern like %06d (write a literal % as %%).")
        implied = preset_for_output(path)
        images = chosen or implied
        if images.extension not in (suffix, ".tif" if suffix == ".tiff" else suffix):
            raise MediaError(
                f"Output {text} ends in {suffix} but {images.label} writes {images.extension} files: "
                f"end the pattern in {images.extension}, or pick a {suffix} format."
            )
        return OutputSpec("images", path.with_name(_fixed_padding(path.name)), images)
    if suffix in _MOVIE_SUFFIXES:
        movie = chosen or preset_for_output(path)
        if not movie.is_movie:
            raise MediaError(
                f"Output {text} is a movie file but {movie.label} is an image sequence: "
                f"give a folder ending in / or a pattern like {path.with_suffix('')}_%06d{movie.extension}."
            )
        if movie.extension != suffix:
            raise MediaError(
                f"Output {text} ends in {suffix} but {movie.label} is written as {movie.extension}: "
                f"name it {path.with_suffix(movie.extension).name}."
            )
        return OutputSpec("movie", path, movie)
    if suffix in image_extensions():
        raise MediaError(
            f"Output {text} names a single image but a clip has many frames: "
            f"add a frame-number pattern, like {path.with_name(path.stem + '_%06d' + path.suffix)}."
        )
    raise MediaError(f"Output {text} has an extension this tool cannot write: {_FORMATS_HINT}.")


def default_output(source: str | Path, preset: str | ExportPreset | None = None) -> str:
    """INPUT_tokenflow.mp4 beside the input, or INPUT_tokenflow.EXT / INPUT_tokenflow/ for a preset."""
    source = Path(source)
    chosen = resolve_preset(preset) or PRESETS["h264"]
    if chosen.is_movie:
        return str(source.with_name(f"{source.stem}_tokenflow{chosen.extension}"))
    return str(source.with_name(f"{source.stem}_tokenflow")) + os.sep


def sequence_paths(spec: OutputSpec, first_number: int, count: int) -> list[Path]:
    """The final file names of a movie (one) or of `count` numbered images."""
    if spec.kind == "movie":
        return [spec.path]
    return [spec.path.with_name(spec.path.name % (first_number + i)) for i in range(count)]


def _nearest_existing(directory: Path) -> Path:
    current = directory.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def check_output_writable(out: str | Path, preset: str | ExportPreset | None = None) -> OutputSpec:
    """Fail before any GPU work if the output could not be written at the end.

    Checks the format is one we write (in `preset`, if given) and that the target
    folder exists and is writable, or that its nearest existing ancestor is a
    writable folder to create it in. It creates nothing.
    """
    spec = parse_output_spec(out, preset)
    directory = spec.path.parent
    existing = _nearest_existing(directory)
    if not existing.is_dir():
        raise MediaError(f"Cannot create folder {directory} because {existing} is a file: choose another output folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise MediaError(f"Folder {existing} is not writable: choose another output folder or fix its permissions.")
    return spec


def check_not_existing(paths: list[Path]) -> None:
    """Refuse outputs that would replace files this job did not make."""
    taken = [p for p in paths if os.path.lexists(p)]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise MediaError(
            f"Output {taken[0]}{more} already exists and is not replaced: "
            "choose another output name or folder, or move the existing files away."
        )


def check_size(preset: ExportPreset, size: tuple[int, int]) -> None:
    min_w, min_h = preset.min_size
    if size[0] < min_w or size[1] < min_h:
        raise MediaError(
            f"{preset.label} needs pictures of at least {min_w}x{min_h} but these are {size[0]}x{size[1]}: "
            "pick ProRes 422 HQ or an image sequence for small clips."
        )


def quantise(image: np.ndarray, bits: int) -> np.ndarray:
    """RGB as uint8 (bits 8) or uint16 (bits 16): floats in [0, 1] rounded, uint8 widened exactly."""
    if image.dtype == np.uint8:
        return image if bits == 8 else image.astype(np.uint16) * 257
    scale = 255.0 if bits == 8 else 65535.0
    out = np.rint(np.clip(image.astype(np.float32), 0.0, 1.0) * scale)
    return out.astype(np.uint8 if bits == 8 else np.uint16)


def to_half(image: np.ndarray) -> np.ndarray:
    """RGB as float16 in [0, 1] for OpenEXR."""
    if image.dtype == np.uint8:
        return (image.astype(np.float32) / 255.0).astype(np.float16)
    return np.clip(image.astype(np.float32), 0.0, 1.0).astype(np.float16)


def _disk_hint(error: BaseException) -> str:
    """What to do, said only when the error is the disk's or the folder's (not an encoder's)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ": the disk is full; free space or pick another output folder."
    if isinstance(error, OSError) and error.errno in (errno.ENOENT, errno.EACCES, errno.EROFS):
        return ": the output folder went away or is not writable; pick another one."
    return "."


class FrameWriter(ABC):
    """Takes frames in order and leaves either a finished output or nothing.

    Use as a context manager: leaving the block normally closes (finalises) the
    output, leaving it with an exception aborts and removes what was written.
    """

    def __init__(self, size: tuple[int, int], preset: ExportPreset) -> None:
        self.size = size  # (width, height) of the frames `write` accepts
        self.preset = preset
        self.outputs: list[Path] = []  # final paths, filled in by close()
        self.frames_written = 0
        # What the output lacks that the user should hear about (audio that could not be
        # carried); the job still succeeds and its callers show these.
        self.warnings: list[str] = []
        self._state: Literal["open", "closed", "aborted"] = "open"

    def write(self, image: np.ndarray) -> None:
        """Append one H x W x 3 RGB frame at the output size: uint8, or float in [0, 1]."""
        if self._state != "open":
            raise RuntimeError(f"write() on a writer that is already {self._state}")
        width, height = self.size
        if (
            not isinstance(image, np.ndarray)
            or not (image.dtype == np.uint8 or np.issubdtype(image.dtype, np.floating))
            or image.shape != (height, width, 3)
        ):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", type(image).__name__)
            self.abort()
            raise MediaError(
                f"Frame {self.frames_written} is {shape} {dtype} but this output takes "
                f"({height}, {width}, 3) uint8 RGB (or float RGB in [0, 1]): resize or convert frames before writing."
            )
        try:
            self._write(np.ascontiguousarray(image))
        except MediaError:
            self.abort()
            raise
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise MediaError(f"Writing frame {self.frames_written} as {self.preset.label} failed ({error})"
                             f"{_disk_hint(error)}") from error
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
        except MediaError:
            self.abort()
            raise
        except (OSError, av.error.FFmpegError) as error:
            self.abort()
            raise MediaError(f"Finishing the {self.preset.label} output failed ({error}){_disk_hint(error)}") from error
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


def _place(staged: Path, final: Path, overwrite: bool) -> None:
    """Give a finished file its final name without ever replacing another file unless asked.

    A hard link fails if the name is taken, atomically; where links are not
    supported (some network and FAT file systems) a rename after a check is the
    best the file system offers.
    """
    if overwrite:
        os.replace(staged, final)
        return
    try:
        os.link(staged, final)
    except FileExistsError:
        raise MediaError(
            f"Output {final} appeared while the job ran and is not replaced: the result was not saved; "
            "choose another output name and run again."
        ) from None
    except OSError:
        if os.path.lexists(final):
            raise MediaError(f"Output {final} already exists and is not replaced: choose another output name.") from None
        os.rename(staged, final)
        return
    os.unlink(staged)


def _h264_pix_fmt(preset: ExportPreset, width: int, height: int) -> str:
    # 4:2:0 needs even sides; odd-sized pictures go 4:4:4 rather than be cropped.
    return preset.pix_fmt if width % 2 == 0 and height % 2 == 0 else "yuv444p"


class MovieWriter(FrameWriter):
    """A movie in a preset's codec at the source's exact rate, with its timecode and audio."""

    def __init__(
        self,
        path: Path,
        preset: ExportPreset,
        frame_rate: Fraction,
        size: tuple[int, int],
        timecode: str | None,
        colour: ColourTags | None = None,
        audio_source: Path | None = None,
        audio_start_s: Fraction = Fraction(0),
        overwrite: bool = False,
    ) -> None:
        super().__init__(size, preset)
        width, height = size
        self.path = path
        self.frame_rate = frame_rate
        self._overwrite = overwrite
        check_size(preset, size)
        if preset.codec == "libx264":
            try:
                av.codec.Codec("libx264", "w")
            except av.codec.codec.UnknownCodecError as error:
                raise MediaError("This PyAV build has no libx264 H.264 encoder: write a .mov (ProRes) or an image sequence instead.") from error
        pix_fmt = _h264_pix_fmt(preset, width, height) if preset.codec == "libx264" else preset.pix_fmt
        self._bits = 8 if pix_fmt in ("yuv420p", "yuv444p") else 16
        tags = colour or default_tags(height)
        # Only H.264 can carry full-range video as editors expect; the others are limited by definition.
        self._full_range = tags.full_range and preset.codec == "libx264"
        self._tags = tags
        self._audio: AudioTrack | None = None
        self._made_folders = _make_folders(path.parent)
        # A random hidden name (not mkstemp, whose 0600 mode would stick to the finished
        # file): two jobs writing the same output never share a partial.
        self._partial = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.partial{path.suffix}")
        try:
            self._container = av.open(str(self._partial), mode="w", format=preset.container)
        except (OSError, av.error.FFmpegError) as error:
            _remove(self._partial)
            _remove_folders(self._made_folders)
            raise MediaError(f"Cannot create {self._partial} ({error}): check the output folder is writable.") from error
        try:
            stream = self._container.add_stream(preset.codec, rate=frame_rate, options=dict(preset.options))
            # PyAV types add_stream by codec-name literals; a preset's video codec gives a video stream.
            assert isinstance(stream, av.video.stream.VideoStream)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            context = stream.codec_context
            # One tick per frame keeps 30000/1001 exact through the muxer.
            context.time_base = 1 / frame_rate
            context.gop_size = max(1, round(frame_rate))  # a keyframe a second scrubs well
            context.thread_type = "AUTO"  # ProRes and DNxHR encode slices on every core
            context.thread_count = 0
            context.colorspace, context.color_primaries, context.color_trc = tags.matrix, tags.primaries, tags.transfer
            context.color_range = 2 if self._full_range else 1
            if timecode:
                stream.metadata["timecode"] = timecode
            self._stream = stream
            self._pix_fmt = pix_fmt
            self._audio = open_audio(self._container, audio_source, preset.audio_codec, audio_start_s, self.warnings)
        except MediaError:
            self._abort()
            raise
        except (OSError, av.error.FFmpegError) as error:
            self._abort()
            raise MediaError(f"{preset.label} cannot be written at {width}x{height} ({error}): pick another format.") from error
        except BaseException:
            self._abort()
            raise

    def _write(self, image: np.ndarray) -> None:
        frame = rgb_to_frame(quantise(image, self._bits), self._pix_fmt, self._tags, self._full_range)
        frame.pts = self.frames_written
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        if self._audio is not None:
            # Audio up to the end of this frame, so the muxer interleaves the two.
            self._audio_step(lambda audio: audio.write_until(Fraction(self.frames_written + 1) / self.frame_rate))

    def _audio_step(self, step: Callable[[AudioTrack], None]) -> None:
        """Run one step of the audio track; its failure names the audio, not the picture or the disk."""
        assert self._audio is not None
        try:
            step(self._audio)
        except (OSError, av.error.FFmpegError, ValueError) as error:
            raise MediaError(f"Carrying the source's audio into {self.path.name} failed ({error}): "
                             "export again with --no-audio (the picture alone), or as an image sequence.") from error

    def _close(self) -> list[Path]:
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        if self._audio is not None:
            self._audio_step(lambda audio: audio.finish(Fraction(self.frames_written) / self.frame_rate))
            if self._audio.skipped_packets:
                self.warnings.append(f"{self._audio.skipped_packets} packet(s) of the source's audio could not be "
                                     "decoded; the export has silence there.")
        self._container.close()
        _place(self._partial, self.path, self._overwrite)
        return [self.path]

    def _abort(self) -> None:
        if self._audio is not None:
            self._audio.close()
        try:
            self._container.close()
        except Exception:  # closing a broken muxer may fail; the file goes anyway
            pass
        _remove(self._partial)
        _remove_folders(self._made_folders)


class ImageSequenceWriter(FrameWriter):
    """Numbered PNG, TIFF or OpenEXR files, staged and moved into place together on close."""

    def __init__(
        self,
        pattern: Path,
        first_number: int,
        size: tuple[int, int],
        preset: ExportPreset | None = None,
        frame_rate: Fraction | None = None,
        overwrite: bool = False,
        timecode: str | None = None,
        colour: ColourTags | None = None,
    ) -> None:
        preset = preset or preset_for_output(pattern)
        super().__init__(size, preset)
        check_size(preset, size)
        self.pattern = pattern
        self.first_number = first_number
        self.frame_rate = frame_rate
        self.timecode = timecode  # of the first image; EXR files carry each one's own
        self.colour = colour or default_tags(size[1])
        self._overwrite = overwrite
        self._made_folders = _make_folders(pattern.parent)
        self._staging = Path(tempfile.mkdtemp(prefix=".tokenflow-", suffix=".partial", dir=pattern.parent))
        self._staged: list[Path] = []
        self._placed: list[Path] = []

    def final_name(self, index: int) -> str:
        return self.pattern.name % (self.first_number + index)

    def _write(self, image: np.ndarray) -> None:
        staged = self._staging / self.final_name(self.frames_written)
        if self.preset.codec == "exr":
            self._write_exr(staged, to_half(image))
        else:
            self._write_ffmpeg_image(staged, quantise(image, self.preset.bit_depth))
        self._staged.append(staged)

    def _write_ffmpeg_image(self, path: Path, pixels: np.ndarray) -> None:
        """PNG and TIFF through FFmpeg's encoders: both write 16-bit RGB, which Pillow does not."""
        context = av.CodecContext.create(self.preset.codec, "w")
        # PyAV types create() as the base class; an image codec's context is a video one.
        assert isinstance(context, av.video.codeccontext.VideoCodecContext)
        context.width, context.height = self.size
        context.pix_fmt = self.preset.pix_fmt
        context.time_base = Fraction(1, 25)
        context.options = dict(self.preset.options)
        source_format = "rgb24" if pixels.dtype == np.uint8 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(pixels, format=source_format)
        if frame.format.name != self.preset.pix_fmt:
            frame = frame.reformat(format=self.preset.pix_fmt)
        packets = [*context.encode(frame), *context.encode(None)]
        with open(path, "wb") as handle:
            for packet in packets:
                handle.write(bytes(packet))

    def _write_exr(self, path: Path, pixels: np.ndarray) -> None:
        import OpenEXR

        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        primaries = chromaticities(self.colour.primaries)
        if primaries is not None:  # the source's primaries, never a blanket Rec.709
            header["chromaticities"] = primaries
        if self.frame_rate is not None:
            header["framesPerSecond"] = self.frame_rate
            if self.timecode:
                header["timeCode"] = _exr_timecode(
                    offset_timecode(self.timecode, self.frames_written, self.frame_rate))
        with OpenEXR.File(header, {"RGB": pixels}) as exr:
            exr.write(str(path))

    def _close(self) -> list[Path]:
        finals = [self.pattern.with_name(p.name) for p in self._staged]
        if not self._overwrite:
            check_not_existing(finals)
        for staged, final in zip(self._staged, finals):
            _place(staged, final, self._overwrite)
            self._placed.append(final)
        shutil.rmtree(self._staging, ignore_errors=True)
        return finals

    def _abort(self) -> None:
        # Only files this writer placed itself are removed; the staging folder is its own.
        for path in self._placed:
            _remove(path)
        self._placed.clear()
        shutil.rmtree(self._staging, ignore_errors=True)
        _remove_folders(self._made_folders)


def open_writer(
    out: str | Path,
    info: ClipInfo,
    first_frame: int,
    size: tuple[int, int] | None = None,
    *,
    preset: str | ExportPreset | None = None,
    start_number: int | None = None,
    frame_count: int | None = None,
    overwrite: bool = False,
    audio: bool = True,
) -> FrameWriter:
    """Open the writer for `out` in `preset` (default: implied by `out`), for frames from `first_frame`.

    `size` is (width, height) and defaults to the source size. Movies get the source
    start timecode moved on by `first_frame`, so the result sits at the same
    timecode as the source frames it replaces (a timecode we cannot parse is only
    carried when `first_frame` is 0, since moving it would be guesswork), the
    source's colour tags and, with `audio`, the source's audio from the same
    instant. Sequences are numbered from `start_number`, or from `first_frame` so
    they line up with the source. With `frame_count`, existing files the output
    would replace are refused now rather than at the end (unless `overwrite`).
    """
    spec = check_output_writable(out, preset)
    size = size or (info.width, info.height)
    check_size(spec.preset, size)
    if spec.kind == "images":
        number = first_frame if start_number is None else start_number
        if number < 0:
            raise MediaError(f"Start number {number} is negative: give 0 or more.")
        if frame_count is not None and not overwrite:
            check_not_existing(sequence_paths(spec, number, frame_count))
        timecode = _start_timecode(info, first_frame) if spec.preset.codec == "exr" else None
        return ImageSequenceWriter(spec.path, number, size, spec.preset, info.frame_rate, overwrite,
                                   timecode=_parsable(timecode, info.frame_rate), colour=info.colour)
    if not overwrite:
        check_not_existing([spec.path])
    return MovieWriter(
        spec.path, spec.preset, info.frame_rate, size, _start_timecode(info, first_frame), info.colour,
        audio_source=info.path if audio and info.audio is not None else None,
        audio_start_s=info.start_s + Fraction(first_frame) / info.frame_rate, overwrite=overwrite,
    )


def _parsable(timecode: str | None, rate: Fraction) -> str | None:
    try:
        return timecode if timecode and offset_timecode(timecode, 0, rate) else None
    except ValueError:
        return None


def _exr_timecode(timecode: str):
    """SMPTE timecode as OpenEXR's timeCode attribute (drop-frame flag included)."""
    import OpenEXR

    hours, minutes, seconds, frames = (int(part) for part in re.split(r"[:;.,]", timecode))
    value = OpenEXR.TimeCode()
    value.hours, value.minutes, value.seconds, value.frame = hours, minutes, seconds, frames
    value.dropFrame = ";" in timecode or "," in timecode
    return value


def _start_timecode(info: ClipInfo, first_frame: int) -> str | None:
    if not info.start_timecode:
        return None
    try:
        return offset_timecode(info.start_timecode, first_frame, info.frame_rate)
    except ValueError:
        return info.start_timecode if first_frame == 0 else None
