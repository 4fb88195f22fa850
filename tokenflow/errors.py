"""Errors a user can act on. Each message says what happened and what to do."""

from __future__ import annotations


class EngineError(Exception):
    """Base class; `code` is a stable identifier the server puts on the wire."""

    code = "engine_error"
    hint = ""


class ModelNotFound(EngineError):
    code = "model_not_found"


class UnsupportedModel(EngineError):
    code = "unsupported_model"


class NonFiniteValues(EngineError):
    code = "non_finite"


class OutOfMemory(EngineError):
    code = "out_of_memory"


class InvalidInput(EngineError):
    code = "invalid_input"
