"""Export a finished version with a preset: its stored full-resolution frames, fetched from
the server and written here with bridge.media's writers (a movie at the source rate and
timecode, or a sequence numbered with source frames).

The presets are `bridge.media.presets` (`tokenflow formats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
from PySide6.QtCore import QObject, QThread, Signal

from bridge import media
from bridge.wire.client import Client, ClientError, CurveKeys
from ui.link import plain_error


@dataclass(frozen=True)
class ExportFormat:
    name: str
    label: str
    kind: str  # "movie" or "images"
    extension: str  # ".mov", ".png", ...
    description: str = ""


def export_formats() -> list[ExportFormat]:
    from bridge.media.presets import PRESETS

    return [ExportFormat(p.name, p.label, "movie" if p.kind == "movie" else "images", p.extension, p.description)
            for p in PRESETS.values()]


def export_target(fmt: ExportFormat, chosen: Path, stem: str) -> Path:
    """The writer's output for what the user picked: the movie file, or a pattern in the chosen folder."""
    if fmt.kind == "movie":
        return chosen if chosen.suffix.lower() == fmt.extension else chosen.with_suffix(fmt.extension)
    return chosen / f"{stem}_%06d{fmt.extension}"


def _open_writer(target: Path, info: media.ClipInfo, first: int, count: int, fmt: ExportFormat) -> media.FrameWriter:
    # frame_count: files the export would replace are refused before anything is fetched
    return media.open_writer(target, info, first, preset=fmt.name, frame_count=count)


class ExportThread(QThread):
    """Fetches a version's frames and writes them, on its own connection: the writer's encoding
    must not hold up the panel's link (ui/link.py), and an export is one at a time and brief.

    `stop()` terminates this thread's ZeroMQ context: the blocking fetch raises ZMQError
    (ETERM), `run()` closes its client and returns, and the writer removes what it wrote.
    """

    progress = Signal(int, int)  # frames written, frames in all
    finished_export = Signal(list, str)  # output paths, error ("" when it worked)

    def __init__(self, endpoint: str, keys: CurveKeys | None, job: str, source: str, first: int, last: int,
                 fmt: ExportFormat, target: Path, parent: QObject | None = None, *, variant: int = 0):
        super().__init__(parent)
        self.endpoint, self.keys = endpoint, keys
        self.context = zmq.Context()
        self._stopping = False
        self.job = job
        self.variant = variant  # which prompt's frames (0: params.prompt, v: params.variants[v-1])
        self.source, self.first, self.last, self.fmt, self.target = source, first, last, fmt, target

    def stop(self) -> None:
        self._stopping = True
        self.context.term()
        self.wait()

    def run(self) -> None:
        client = Client(self.endpoint, timeout=30.0, keys=self.keys, name="tokenflow-panel-export",
                        context=self.context)
        total = self.last - self.first + 1
        outputs: list[str] = []
        error = ""
        try:
            info = media.probe(self.source)
            client.connect()
            with _open_writer(self.target, info, self.first, total, self.fmt) as writer:
                for event in client.fetch_frames(self.job, self.first, self.last, variant=self.variant):
                    writer.write(event.image())
                    self.progress.emit(writer.frames_written, total)
            outputs = [str(p) for p in writer.outputs]
        except zmq.ZMQError:
            error = "The export was stopped; nothing was left behind."
        except (ClientError, media.MediaError, ValueError) as exc:
            error = plain_error(exc)
        finally:
            client.close()
        if not self._stopping:
            self.finished_export.emit(outputs, error)
