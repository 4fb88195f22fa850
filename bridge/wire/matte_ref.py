"""How a job names an uploaded matte: `params.matte` is `"upload:ID"` (docs/protocol.md,
"Mattes as uploaded frames").

`params.matte` stays the one place a job's matte is named, whatever its form: an absolute
path on the server's machine, `"alpha"` (the source's own alpha), or an upload. The
prefix cannot begin an absolute path on any system the server runs on, so the forms
never overlap.
"""

from __future__ import annotations

from bridge.wire.protocol import _UPLOAD_ID  # the id's one definition (upload_open's `upload`)

UPLOAD_PREFIX = "upload:"


def matte_upload(matte: object) -> str | None:
    """The upload id a `params.matte` value names, or None for a path, "alpha" or nothing."""
    if isinstance(matte, str) and matte.startswith(UPLOAD_PREFIX):
        return matte[len(UPLOAD_PREFIX):]
    return None


def upload_matte(upload: str) -> str:
    """The `params.matte` value naming upload `upload`."""
    if not _UPLOAD_ID.match(upload):
        raise ValueError(f"{upload!r} is not an upload id (letters, digits, '-', '_'; 1 to 64).")
    return UPLOAD_PREFIX + upload
