"""What one client of a multi-client server (`--curve-dir`) may touch beyond its own jobs.

The server's own user (LOCAL_OWNER: the ipc:// socket, or the user's own local key) may do
anything the server's account may. Any other key holder (issue 20, items 12 and 17):
- `overwrite` replaces only files its own jobs wrote (the store records every job's outputs);
- it reads inputs and probes paths only inside the allowed input folders, and a path
  outside them is refused the same way whether or not it exists (no existence oracle);
- it cannot pause or resume the whole queue (an admin's act).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from server.output_roots import OutputRoots
from server.resolved_job import LOCAL_OWNER

OwnersOf = Callable[[str], set[str]]  # a file path -> the owners of the jobs that wrote it (JobStore.output_owners)


def is_admin(owner: str) -> bool:
    return owner == LOCAL_OWNER


def foreign_files(existing: Iterable[Path], owner: str, owners_of: OwnersOf | None) -> list[Path]:
    """The files among `existing` that `owner` may not replace: none for the server's own user;
    for another client, every file that no job of its own wrote."""
    if is_admin(owner) or owners_of is None:
        return []
    return [path for path in existing if owner not in owners_of(str(path))]


def may_read(owner: str, path: str | Path, inputs: OutputRoots) -> bool:
    """Whether `owner` may read `path` as an input or probe it: the server's own user anywhere,
    another client only inside `inputs` (the allowed input folders, never the server's own files).

    The path is resolved first ('..' and links), so a link inside an allowed folder that
    leads outside it is refused; the answer is the same whether the path exists or not.
    """
    return is_admin(owner) or inputs.permits(Path(path).expanduser())
