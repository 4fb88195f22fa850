"""Everything the server is told at start, in one value passed to its parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.wire.protocol import Limits
from server.disk import Retention, real_free_space
from server.paths import DataDir


@dataclass(frozen=True)
class ServerConfig:
    data: DataDir
    models: tuple[str, ...]  # the first is the default; a job may ask for any of them
    device: str = "auto"
    cache_dir: Path | None = None  # the inversion cache, shared by every job
    bind: str = ""  # required: bridge.wire.local.default_endpoint() is what `tokenflow serve` binds by default
    allowed_output_dirs: tuple[Path, ...] = ()
    curve_dir: Path | None = None  # server.key_secret + clients/*.key; required off loopback
    limits: Limits = field(default_factory=Limits)
    name: str = "tokenflow-server"
    retention: Retention = field(default_factory=Retention)  # what is kept, how long; see server/disk.py
    free_space: Callable[[Path], int] = real_free_space  # bytes free where a path lives (tests inject one)
    cluster: str | None = None  # a Ray cluster's address ("auto": $RAY_ADDRESS) that runs the jobs; docs/cluster.md

    @property
    def default_model(self) -> str:
        return self.models[0]
