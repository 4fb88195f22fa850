"""Everything the server is told at start, in one value passed to its parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.wire.protocol import Limits
from server.disk import Retention, real_free_space
from server.output_roots import OutputRoots, private_folders
from server.paths import DataDir


@dataclass(frozen=True)
class ServerConfig:
    data: DataDir
    models: tuple[str, ...]  # the first is the default; a job may ask for any of them
    device: str = "auto"
    cache_dir: Path | None = None  # the inversion cache, shared by every job
    bind: str = ""  # required: bridge.wire.local.default_endpoint() is what `tokenflow serve` binds by default
    allowed_output_dirs: tuple[Path, ...] = ()
    # Where clients other than the server's own user read inputs (--allow-input); empty: the output folders.
    allowed_input_dirs: tuple[Path, ...] = ()
    curve_dir: Path | None = None  # server.key_secret + clients/*.key; required off loopback
    limits: Limits = field(default_factory=Limits)
    name: str = "tokenflow-server"
    retention: Retention = field(default_factory=Retention)  # what is kept, how long; see server/disk.py
    free_space: Callable[[Path], int] = real_free_space  # bytes free where a path lives (tests inject one)
    cluster: str | None = None  # a Ray cluster's address ("auto": $RAY_ADDRESS) that runs the jobs; docs/cluster.md

    @property
    def default_model(self) -> str:
        return self.models[0]

    @property
    def output_roots(self) -> OutputRoots:
        """Where jobs may write: the allowed folders minus the server's own files (server/output_roots.py)."""
        return OutputRoots(tuple(Path(d).resolve() for d in self.allowed_output_dirs),
                           private_folders(self.data, self.cache_dir, self.curve_dir))

    @property
    def input_roots(self) -> OutputRoots:
        """Where a client other than the server's own user may read (server/client_scope.py)."""
        given = self.allowed_input_dirs or self.allowed_output_dirs
        return OutputRoots(tuple(Path(d).resolve() for d in given),
                           private_folders(self.data, self.cache_dir, self.curve_dir))
