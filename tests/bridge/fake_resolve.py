"""A fake of DaVinci Resolve's scripting object model, for the methods bridge/editors/resolve.py uses.

Follows the README that ships with Resolve (Developer/Scripting) and the quirks users
measured, because the tests exist to catch code that trusts Resolve too much:
- `AppendToTimeline([{clipInfo}])` never overwrites: a clip that would overlap an item
  already on its track, or that names a track that does not exist, is dropped without
  an error (it is simply missing from the returned list). `endFrame` is exclusive on
  18.x and 20+, inclusive on 19.1.x (reported on Studio 19.1.3: `endFrame` = the
  clip's frame count appends nothing there).
- `ImportMedia` imports into the media pool's *current* folder; with the media pool's
  "Show Individual Frames" on, an image sequence comes back as one clip per image.
- `TimelineItem.GetSourceStartFrame()` is one frame off (below the real first frame).
- Methods arrive with versions (`SINCE`): on an older Resolve the name still answers
  (`hasattr` is true for every name), with None, so calling it raises TypeError. The
  same holds for names no version has.
- `Timeline.GetMarkInOut()` (19.1+) gives offsets from the timeline's start frame; keys
  are absent when no mark is set.
- The free edition ("DaVinci Resolve") answers Studio-only calls with False, and its
  UIManager builds nothing since 19.1.
Every call is recorded in `FakeResolve.calls` as (object kind, method, args).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

_ids = itertools.count(1)
STUDIO_ONLY = {"DetectSceneCuts", "CreateSubtitlesFromAudio", "AnalyzeDolbyVision"}
OLDEST = (18, 5, 0)  # the oldest version docs/editors.md claims
# The first README each method appears in (18.5, 18.6.6, 19.0.x, 19.1, 20.x, 21.0 were checked).
SINCE = {
    "GetTrackTypeAndIndex": (19, 0, 0),
    "SetThirdPartyMetadata": (19, 0, 2), "GetThirdPartyMetadata": (19, 0, 2),
    "GetMarkInOut": (19, 1, 0), "SetMarkInOut": (19, 1, 0), "ClearMarkInOut": (19, 1, 0),
    "GetSelectedClips": (21, 0, 0),
}


class _Recorded:
    KIND = "object"

    def __init__(self, app: FakeResolve):
        self._app = app
        self._id = f"{self.KIND}-{next(_ids)}"

    def __getattribute__(self, name: str):
        since = SINCE.get(name)
        if since is not None and tuple(object.__getattribute__(self, "_app").version) < since:
            return None  # as Resolve answers for a method this version does not have
        return object.__getattribute__(self, name)

    def __getattr__(self, name: str):
        # Resolve's objects answer every name: an unknown method is None (not an AttributeError).
        if name[:1].isupper():
            if name in STUDIO_ONLY:
                return self._app.studio_only(name)
            return None
        raise AttributeError(name)

    def _call(self, method: str, *args: Any) -> None:
        self._app.calls.append((self.KIND, method, args))

    def GetUniqueId(self) -> str:
        return self._id


class FakeMediaPoolItem(_Recorded):
    KIND = "MediaPoolItem"

    def __init__(self, app: FakeResolve, name: str, properties: dict[str, str], frames: int):
        super().__init__(app)
        self.name = name
        self.properties = {"Clip Name": name, **properties}
        self.frames = frames  # how many source frames the clip holds
        self.metadata: dict[str, str] = {}
        self.third_party: dict[str, str] = {}

    def GetName(self) -> str:
        return self.name

    def GetClipProperty(self, key: str | None = None):
        self._call("GetClipProperty", key)
        return dict(self.properties) if key is None else self.properties.get(key, "")

    def SetClipProperty(self, key: str, value: str) -> bool:
        """The README: "Sets the given property to propertyValue (string)"; "Clip Name" renames the clip in
        the media pool (GetName answers the new name)."""
        self._call("SetClipProperty", key, value)
        self.properties[key] = str(value)
        if key == "Clip Name":
            self.name = str(value)
        return True

    def SetMetadata(self, key, value=None) -> bool:
        self._call("SetMetadata", key, value)
        updates = key if isinstance(key, dict) else {key: value}
        # Resolve accepts only its own metadata fields
        if any(k not in ("Comments", "Description", "Keywords", "Shot", "Scene", "Take") for k in updates):
            return False
        self.metadata.update({k: str(v) for k, v in updates.items()})
        return True

    def GetMetadata(self, key=None):
        return dict(self.metadata) if key is None else self.metadata.get(key, "")

    def SetThirdPartyMetadata(self, key, value=None) -> bool:
        self._call("SetThirdPartyMetadata", key, value)
        self.third_party.update(key if isinstance(key, dict) else {key: value})
        return True

    def GetThirdPartyMetadata(self, key=None):
        return dict(self.third_party) if key is None else self.third_party.get(key, "")


class FakeFolder(_Recorded):
    KIND = "Folder"

    def __init__(self, app: FakeResolve, name: str):
        super().__init__(app)
        self.name = name
        self.clips: list[FakeMediaPoolItem] = []
        self.subfolders: list[FakeFolder] = []

    def GetName(self) -> str:
        return self.name

    def GetClipList(self) -> list:
        return list(self.clips)

    def GetSubFolderList(self) -> list:
        return list(self.subfolders)


class FakeTimelineItem(_Recorded):
    KIND = "TimelineItem"

    def __init__(self, app: FakeResolve, name: str, media_item: FakeMediaPoolItem | None, start: int,
                 duration: int, left_offset: int, track: int):
        super().__init__(app)
        self.name, self.media_item = name, media_item
        self.start, self.duration, self.left_offset, self.track = start, duration, left_offset, track
        self.color = ""

    def GetName(self) -> str:
        return self.name

    def GetStart(self, subframe: bool = False) -> int:
        return self.start

    def GetEnd(self, subframe: bool = False) -> int:
        return self.start + self.duration  # exclusive, as Resolve reports it

    def GetDuration(self, subframe: bool = False) -> int:
        return self.duration

    def GetLeftOffset(self, subframe: bool = False) -> int:
        return self.left_offset

    def GetRightOffset(self, subframe: bool = False) -> int:
        frames = self.media_item.frames if self.media_item else self.left_offset + self.duration
        return frames - self.left_offset - self.duration

    def GetSourceStartFrame(self) -> int:
        return self.left_offset - 1  # the measured off-by-one

    def GetMediaPoolItem(self) -> FakeMediaPoolItem | None:
        return self.media_item

    def GetTrackTypeAndIndex(self) -> list:
        return ["video", self.track]

    def SetClipColor(self, color: str) -> bool:
        self._call("SetClipColor", color)
        self.color = color
        return True

    def GetClipColor(self) -> str:
        return self.color


class FakeTimeline(_Recorded):
    KIND = "Timeline"

    def __init__(self, app: FakeResolve, name: str, frame_rate: str = "29.97", start_frame: int = 108000,
                 tracks: int = 1):
        super().__init__(app)
        self.name, self.frame_rate, self.start_frame = name, frame_rate, start_frame
        self.tracks: list[list[FakeTimelineItem]] = [[] for _ in range(tracks)]
        self.locked: set[int] = set()
        self.disabled: set[int] = set()
        self.playhead = start_frame
        self.marks: dict[str, dict[str, int]] = {}
        self.selection: list[FakeTimelineItem] = []

    def GetSelectedClips(self) -> list:  # 21.0+ (SINCE); the timeline items selected on the Edit page
        return list(self.selection or [])

    def add(self, track: int, name: str, media_item: FakeMediaPoolItem | None, start: int, duration: int,
            left_offset: int = 0) -> FakeTimelineItem:
        while len(self.tracks) < track:
            self.tracks.append([])
        item = FakeTimelineItem(self._app, name, media_item, start, duration, left_offset, track)
        self.tracks[track - 1].append(item)
        return item

    def GetName(self) -> str:
        return self.name

    def GetStartFrame(self) -> int:
        return self.start_frame

    def GetEndFrame(self) -> int:
        return max([i.GetEnd() for t in self.tracks for i in t] + [self.start_frame])

    def GetSetting(self, key: str = ""):
        return {"timelineFrameRate": self.frame_rate}.get(key, "")

    def GetTrackCount(self, kind: str) -> int:
        return len(self.tracks) if kind == "video" else 0

    def AddTrack(self, kind: str, sub: Any = None) -> bool:
        self._call("AddTrack", kind)
        if kind != "video":
            return False
        self.tracks.append([])
        return True

    def GetItemListInTrack(self, kind: str, index: int) -> list:
        if kind != "video" or not 1 <= index <= len(self.tracks):
            return None  # Resolve answers None for a track that does not exist
        return sorted(self.tracks[index - 1], key=lambda i: i.start)

    def GetIsTrackEnabled(self, kind: str, index: int) -> bool:
        return index not in self.disabled

    def GetIsTrackLocked(self, kind: str, index: int) -> bool:
        return index in self.locked

    def GetCurrentVideoItem(self) -> FakeTimelineItem | None:
        # The topmost enabled track's item under the playhead.
        for index in range(len(self.tracks), 0, -1):
            if index in self.disabled:
                continue
            for item in self.tracks[index - 1]:
                if item.start <= self.playhead < item.GetEnd():
                    return item
        return None

    def GetMarkInOut(self) -> dict:
        return {k: dict(v) for k, v in self.marks.items()}

    def SetMarkInOut(self, mark_in: int, mark_out: int, kind: str = "all") -> bool:
        self._call("SetMarkInOut", mark_in, mark_out, kind)
        for k in (("video", "audio") if kind == "all" else (kind,)):
            self.marks[k] = {"in": mark_in, "out": mark_out}
        return True

    def ClearMarkInOut(self, kind: str = "all") -> bool:
        self._call("ClearMarkInOut", kind)
        for k in (("video", "audio") if kind == "all" else (kind,)):
            self.marks.pop(k, None)
        return True

    def GetCurrentTimecode(self) -> str:
        return "01:00:00:00"

    def DeleteClips(self, items: list, ripple: bool = False) -> bool:
        self._call("DeleteClips", [i.name for i in items])
        for track in self.tracks:
            track[:] = [i for i in track if i not in items]
        return True


class FakeMediaPool(_Recorded):
    KIND = "MediaPool"

    def __init__(self, app: FakeResolve, project: FakeProject):
        super().__init__(app)
        self.project = project
        self.root = FakeFolder(app, "Master")
        self.current = self.root
        self.show_individual_frames = False  # the media pool's View > Show Individual Frames

    def GetRootFolder(self) -> FakeFolder:
        return self.root

    def AddSubFolder(self, parent: FakeFolder, name: str) -> FakeFolder:
        self._call("AddSubFolder", parent.name, name)
        folder = FakeFolder(self._app, name)
        parent.subfolders.append(folder)
        return folder

    def GetCurrentFolder(self) -> FakeFolder:
        return self.current

    def SetCurrentFolder(self, folder: FakeFolder) -> bool:
        self._call("SetCurrentFolder", folder.name)
        self.current = folder
        return True

    def ImportMedia(self, items: list) -> list:
        self._call("ImportMedia", items)
        made = []
        for info in items:
            info = {"FilePath": info} if isinstance(info, str) else info
            path = info["FilePath"]
            if "StartIndex" in info:
                numbers = range(info["StartIndex"], info["EndIndex"] + 1)
                files = [Path(path.replace("%06d", f"{n:06d}")) for n in numbers]
                if not files or not all(f.is_file() for f in files):
                    continue  # Resolve imports nothing for a sequence it cannot find
                if self.show_individual_frames:  # one still per image
                    for file in files:
                        still = FakeMediaPoolItem(self._app, file.name, {"File Path": str(file), "Type": "Still",
                                                                         "FPS": "", "Frames": "1"}, 1)
                        self.current.clips.append(still)
                        made.append(still)
                    continue
                name = Path(path).name.replace("%06d", f"[{numbers[0]:06d}-{numbers[-1]:06d}]")
                frames, start = len(files), numbers[0]
                rate = self.project.GetCurrentTimeline().frame_rate
            else:
                if not os.path.isfile(path):
                    continue
                from bridge.media import probe

                meta = probe(path)
                frames, start, name = meta.frame_count, 0, Path(path).name
                rate = f"{float(meta.frame_rate):.3f}".rstrip("0").rstrip(".")
            item = FakeMediaPoolItem(self._app, name, {"File Path": path, "Type": "Video", "FPS": rate,
                                                      "Start": str(start), "Frames": str(frames)}, frames)
            self.current.clips.append(item)
            made.append(item)
        return made

    def DeleteClips(self, items: list) -> bool:
        self._call("DeleteClips", [i.name for i in items])
        for folder in [self.root, *self.root.subfolders]:
            folder.clips[:] = [c for c in folder.clips if c not in items]
        return True

    def AppendToTimeline(self, infos: list) -> list:
        self._call("AppendToTimeline", infos)
        timeline = self.project.GetCurrentTimeline()
        made = []
        for info in infos:
            media_item, first, end = info["mediaPoolItem"], int(info["startFrame"]), int(info["endFrame"])
            track = int(info.get("trackIndex", 1))
            record = int(info.get("recordFrame", timeline.GetEndFrame()))
            duration = end - first + (1 if self._app.end_frame_inclusive() else 0)
            if not 1 <= track <= len(timeline.tracks) or duration <= 0 or first + duration > media_item.frames:
                continue
            if any(i.start < record + duration and i.GetEnd() > record for i in timeline.tracks[track - 1]):
                continue  # overlap: silently dropped, never overwritten
            made.append(timeline.add(track, media_item.name, media_item, record, duration, first))
        return made


class FakeProject(_Recorded):
    KIND = "Project"

    def __init__(self, app: FakeResolve):
        super().__init__(app)
        self.timelines: list[FakeTimeline] = []
        self.current: FakeTimeline | None = None
        self.media_pool = FakeMediaPool(app, self)

    def add_timeline(self, **kwargs: Any) -> FakeTimeline:
        timeline = FakeTimeline(self._app, f"Timeline {len(self.timelines) + 1}", **kwargs)
        self.timelines.append(timeline)
        self.current = self.current or timeline
        return timeline

    def GetMediaPool(self) -> FakeMediaPool:
        return self.media_pool

    def GetCurrentTimeline(self) -> FakeTimeline | None:
        return self.current

    def SetCurrentTimeline(self, timeline: FakeTimeline) -> bool:
        self._call("SetCurrentTimeline", timeline.name)
        self.current = timeline
        return True

    def GetTimelineCount(self) -> int:
        return len(self.timelines)

    def GetTimelineByIndex(self, index: int) -> FakeTimeline | None:
        return self.timelines[index - 1] if 1 <= index <= len(self.timelines) else None


class FakeProjectManager:
    def __init__(self, project: FakeProject | None):
        self.project = project

    def GetCurrentProject(self) -> FakeProject | None:
        return self.project


class FakeResolve:
    """`resolve` as a script sees it. product: "DaVinci Resolve" (free) or "DaVinci Resolve Studio"."""

    def __init__(self, product: str = "DaVinci Resolve", version: tuple = (19, 1, 4), page: str = "edit",
                 inclusive_end: bool | None = None):
        """inclusive_end: how AppendToTimeline reads endFrame; None: as this version's Resolve does."""
        self.product, self.version, self.page = product, tuple(version), page
        self.inclusive_end = inclusive_end
        self.calls: list[tuple] = []
        self.project = FakeProject(self)
        self.project_manager = FakeProjectManager(self.project)

    def end_frame_inclusive(self) -> bool:
        if self.inclusive_end is not None:
            return self.inclusive_end
        return (19, 1, 0) <= self.version < (19, 2, 0)

    def studio_only(self, name: str):
        def call(*args: Any):
            self.calls.append(("Resolve", name, args))
            return "Studio" in self.product  # the free edition answers False, it does not raise

        return call

    def GetProductName(self) -> str:
        return self.product

    def GetVersion(self) -> list:
        return [*self.version, 0, ""][:5]

    def GetCurrentPage(self) -> str:
        return self.page

    def GetProjectManager(self) -> FakeProjectManager:
        return self.project_manager

    def Fusion(self):
        return _FakeFusion(self)

    # helpers for tests
    def media(self, path: str | os.PathLike, fps: str = "29.97", frames: int = 120, kind: str = "Video",
              start_tc: str = "00:00:00:00") -> FakeMediaPoolItem:
        item = FakeMediaPoolItem(self, Path(path).name, {"File Path": str(path), "FPS": fps, "Type": kind,
                                                         "Start TC": start_tc, "Frames": str(frames)}, frames)
        self.project.media_pool.root.clips.append(item)
        return item

    def names(self, kind: str | None = None) -> list[str]:
        return [m for k, m, _ in self.calls if kind is None or k == kind]


class _FakeFusion:
    def __init__(self, app: FakeResolve):
        self._app = app

    @property
    def UIManager(self):
        return None if "Studio" not in self._app.product and self._app.version >= (19, 1) else object()
