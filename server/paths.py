"""Where the server keeps its state: platform conventions, overridable for tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bridge import folders


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def database(self) -> Path:
        return self.root / "jobs.sqlite3"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def job(self, job_id: str) -> Path:
        return self.jobs / job_id

    def create(self) -> DataDir:
        for p in (self.root, self.jobs, self.outputs):
            p.mkdir(parents=True, exist_ok=True)
        return self


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> DataDir:
    """--data-dir, else $TOKENFLOW_DATA_DIR, else the user data directory (bridge.folders)."""
    if explicit:
        return DataDir(Path(explicit).expanduser().resolve())
    return DataDir(folders.data_dir())
