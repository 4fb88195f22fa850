"""A job as the server keeps it: the submitted `JobSpec` checked and made explicit.

`server/submission.py` makes one from a `JobSpec` (absolute paths, frame numbers, the
model and output chosen); the store keeps it as JSON in the job's row and hands it back
typed (`to_dict`/`from_dict` are used at that boundary only). The stored keys are the
ones servers have always written, so a database from an older server still opens: a
field that older servers did not write reads as its default here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from bridge.wire.edit_params import complete
from bridge.wire.naming import prompt_outputs
from tokenflow.params import EditParams

# The client identity of the server's own user (an ipc:// peer, or the user's own local
# CurveZMQ key): it may act on every job. Jobs stored before owners were recorded are its.
LOCAL_OWNER = "local"
UPLOAD_KEYS = ("upload", "upload_digest", "matte_input", "matte_digest")


@dataclass(frozen=True)
class SourceInfo:
    """The input clip as probed at submit time."""

    width: int
    height: int
    frame_rate: str  # exact, as a fraction's text ("30000/1001")


# kw_only: the stored order of keys is kept (required and defaulted fields interleave there).
@dataclass(frozen=True, kw_only=True)
class ResolvedJob:
    input: str  # absolute path on the server's machine
    frames: str | None = None  # the range as submitted ("FIRST:LAST", None = whole clip)
    first: int  # source frame numbers, inclusive
    last: int
    n_frames: int
    output: str  # absolute movie path or image-sequence pattern
    model: str
    params: dict[str, Any]  # EditParams fields by name (the wire's form; see `edit_params`)
    proxy_size: int = 160
    proxy_format: str = "jpeg"
    priority: int = 0
    client_token: str | None = None
    overwrite: bool = False
    preset: str | None = None  # None: stored before presets existed; the output's extension implies it
    start_number: int | None = None  # None: the source frame numbers
    audio: bool = True  # carry the source's audio into a movie output
    source: SourceInfo | None = None
    destination: str | None = None
    name_template: str | None = None
    name: str | None = None
    batch: str | None = None
    row: int | None = None
    batch_jobs: int | None = None  # the batch's size, for the queue's room (server/store.py, create_job)
    owner: str = LOCAL_OWNER  # the client identity that submitted it
    upload: str | None = None  # the source is this upload (`input` is its folder); see server/uploads.py
    upload_digest: str | None = None  # the upload's digest when the job was accepted
    # The matte is an upload (params.matte "upload:ID"): its folder, and its digest when accepted.
    matte_input: str | None = None
    matte_digest: str | None = None

    @property
    def prompt(self) -> str:
        return str(self.params.get("prompt", ""))

    @property
    def variants(self) -> list[str]:
        """The prompts after `prompt` (params.variants; docs/protocol.md, "Several prompts in one job")."""
        return [str(v) for v in self.params.get("variants") or ()]

    @property
    def prompts(self) -> list[str]:
        """Every prompt in variant order: `prompt` is variant 0."""
        return [self.prompt, *self.variants]

    @property
    def outputs(self) -> list[str]:
        """The output each prompt is written to, in variant order: [`output`] for a one-prompt job."""
        return prompt_outputs(self.output, self.prompts)

    def edit_params(self) -> EditParams:
        """The parameters typed. Built when the job runs, not when it is read back, so a listing
        never fails on the stored parameters of a job that an older server accepted. The schema
        fills what a job stored before a parameter existed did not say."""
        return EditParams(**complete(self.params))

    def to_dict(self) -> dict[str, Any]:
        """The stored form (JSON-ready). A file job's stored keys stay the ones servers have
        always written: the upload keys are written only for a job whose source is an upload."""
        data = dataclasses.asdict(self)
        for name in UPLOAD_KEYS:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ResolvedJob:
        """The stored form back; keys this server does not know (a newer server's) are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if isinstance(values.get("source"), dict):
            values["source"] = SourceInfo(**values["source"])
        return cls(**values)
