"""Results keyed by parameters + pixels: an identical upload job is answered from the job
that has (or is making) its result, and nothing runs (docs/protocol.md, "Submitting,
and results that exist already").

The index is one small file per key in `DATA_DIR/upload-results/`, naming the job. The
store stays the truth: an entry whose job was deleted, failed or was cancelled is
ignored (and replaced by the next job with that key).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from bridge.wire import protocol as p
from bridge.wire.edit_params import ParamsError, complete

RESULTS_DIR = "upload-results"
REUSABLE = (p.JobState.QUEUED, p.JobState.RUNNING, p.JobState.DONE)
# The spec's fields that shape what a job produces or where it goes, beside the pixels and
# parameters. Not priority, client_token, batch or row: they change when, not what.
OUTPUT_FIELDS = ("output", "preset", "start_number", "overwrite", "destination", "name_template", "name",
                 "proxy_size", "proxy_format")


def result_key(spec: p.JobSpec, digest: str, first: int, last: int, model: str, owner: str,
               matte_digest: str | None = None) -> str | None:
    """The key, or None when the parameters do not make a job (the submit refuses them by name).
    An uploaded matte counts by its pixels (`matte_digest`), not by its id, as the source does."""
    try:
        params = complete(spec.params)
    except ParamsError:
        return None
    described = {"digest": digest, "first": first, "last": last, "model": model, "owner": owner, "params": params,
                 **{name: getattr(spec, name) for name in OUTPUT_FIELDS}}
    if matte_digest is not None:
        described["params"] = {**params, "matte": "upload"}
        described["matte_digest"] = matte_digest
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()


class ResultIndex:
    def __init__(self, data_root: Path):
        self.root = data_root / RESULTS_DIR
        self.root.mkdir(parents=True, exist_ok=True)

    def job_for(self, key: str) -> str | None:
        try:
            return str(json.loads((self.root / key).read_text())["job"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def record(self, key: str, job_id: str) -> None:
        path = self.root / key
        tmp = path.with_name(f".{key}.partial")
        tmp.write_text(json.dumps({"job": job_id}))
        os.replace(tmp, path)

    def prune(self, exists: Callable[[str], bool]) -> int:
        """Entries whose job is gone (deleted, or swept by retention) removed; returns how many."""
        removed = 0
        for path in self.root.iterdir():
            if path.name.startswith("."):  # an entry being written
                continue
            job_id = self.job_for(path.name)
            if job_id is None or not exists(job_id):
                path.unlink(missing_ok=True)
                removed += 1
        return removed
