"""A resolved job for store-level tests, without probing a clip: every field has a stand-in."""

from __future__ import annotations

from typing import Any

from server.resolved_job import ResolvedJob


def resolved_job(**fields: Any) -> ResolvedJob:
    values: dict[str, Any] = {"input": "/clips/a.mp4", "frames": "0:3", "first": 0, "last": 3, "n_frames": 4,
                              "output": "/out/a.mp4", "model": "sd15", "params": {"prompt": "x"}}
    return ResolvedJob(**(values | fields))
