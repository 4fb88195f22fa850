"""Keeps one engine (one loaded model) alive between jobs; swaps it when a job asks for another."""

from __future__ import annotations

import gc
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

EngineFactory = Callable[[str], Any]  # model name -> object with .edit(...) per tokenflow.engine.Engine


def default_factory(device: str, cache_dir: Path | None) -> EngineFactory:
    """The real engine; imported on first use so the server answers `hello` while torch loads."""

    def make(model: str) -> Any:
        from server.quiet import quiet_libraries

        quiet_libraries()
        from server.model_registry import find_preview_decoders, resolve_model
        from tokenflow.engine import Engine

        # A name registered with `tokenflow models add` stands for its folder or file; the
        # model family's tiny autoencoder, found in the registry or the hub cache, decodes the previews.
        engine = Engine(resolve_model(model), device=device, cache_dir=cache_dir,
                        preview_decoders=find_preview_decoders())
        if engine.preview_decoder_problem:  # once per model load
            logging.getLogger("tokenflow.server").warning("previews use the full VAE: %s",
                                                          engine.preview_decoder_problem)
        return engine

    return make


class EngineView(Protocol):
    """What the service tells clients about the engine (Welcome): an EngineHost, or a cluster's workers."""

    @property
    def device(self) -> str: ...

    @property
    def state(self) -> str: ...


def free_accelerator_memory() -> None:
    """Give cached GPU blocks back after a failure, so the next job starts clean."""
    gc.collect()
    if sys.modules.get("torch") is not None:  # only where the engine already loaded it
        from tokenflow.devices import empty_cache

        empty_cache()  # CUDA or Apple Silicon (mps)


class EngineHost:
    def __init__(self, factory: EngineFactory, default_model: str):
        self._factory = factory
        self.default_model = default_model
        self._engine: Any = None
        self._model: str | None = None
        self._lock = threading.Lock()
        self.state = "loading"
        self.device = ""

    @property
    def model(self) -> str | None:
        """The model loaded now, if any."""
        return self._model if self._engine is not None else None

    def loaded(self, model: str) -> bool:
        return self._engine is not None and self._model == model

    def get(self, model: str) -> Any:
        """The engine for `model`, loading it (and dropping another) if needed. Raises what loading raises."""
        with self._lock:
            if self.loaded(model):
                return self._engine
            self._engine, self._model = None, None
            free_accelerator_memory()  # the old model's memory first, or two models must fit at once
            self.state = "loading"
            try:
                engine = self._factory(model)
            except BaseException as exc:
                self.state = f"failed: {exc}"
                raise
            self._engine, self._model = engine, model
            loaded = getattr(engine, "model", None)
            self.device = str(getattr(loaded, "device", "") or "")
            self.state = "ready"
            return engine
