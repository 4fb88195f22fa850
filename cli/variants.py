"""Output names for several prompts edited in one pass: defined in bridge/wire/naming.py
(the server and every client name them alike); kept here for callers of the old place."""

from __future__ import annotations

from bridge.wire.naming import variant_output, variant_outputs

__all__ = ["variant_output", "variant_outputs"]
