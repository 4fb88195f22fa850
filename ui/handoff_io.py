"""Reading an editor launcher's handoff request (see bridge/editors/handoff.py and docs/panel.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from bridge.editors.handoff import HandoffError, HandoffRequest


def read_request(source: str, stdin: TextIO | None = None) -> HandoffRequest:
    """The request in a JSON file, or on stdin for "-".

    On stdin the request ends where its JSON object ends, not at end of file: a launcher
    may keep the pipe open while it waits for results.
    """
    if source != "-":
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise HandoffError(f"handoff file {source} cannot be read ({exc.strerror or exc})") from None
        return HandoffRequest.from_json(text)
    stream = stdin or sys.stdin
    text = ""
    for line in stream:
        text += line
        try:
            json.loads(text)
        except json.JSONDecodeError:
            continue
        return HandoffRequest.from_json(text)
    if not text.strip():
        raise HandoffError("request: nothing arrived on stdin")
    return HandoffRequest.from_json(text)  # raises with the JSON error
