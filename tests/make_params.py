"""EditParams for tests, built the way the server and `tokenflow edit` build them: from the one
table (bridge/wire/edit_params.py), defaults filled in and every value checked."""

from __future__ import annotations

from typing import Any

from bridge.wire.edit_params import complete
from tokenflow.params import EditParams


def make_params(**values: Any) -> EditParams:
    return EditParams(**complete(values))
