"""The engine: one loaded model that edits clips. Used by `tokenflow edit` and the server's worker."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from pathlib import Path

import numpy as np
import torch

from tokenflow import ddim, devices
from tokenflow.aspect import Geometry, crop, geometry, pad
from tokenflow.attention import TokenFlowState, installed
from tokenflow.background import Finisher, read_ahead
from tokenflow.cache import InversionCache, compact, inversion_key
from tokenflow.editor import Conditioning, EditLoop, device_index, first_preview_frames, invert, preview_first_step
from tokenflow.errors import InvalidInput, OutOfMemory
from tokenflow.events import Cancelled, EventSink, FrameReady, Preview, Progress
from tokenflow.family import native_short_side
from tokenflow.frames import decode_chunks, encode_frames, finish_decoded, to_model_input, to_uint8
from tokenflow.keyframes import resolve_max_joint_keyframes
from tokenflow.lora import LoraSet
from tokenflow.matte import MatteOptions
from tokenflow.matte import prepare as prepare_matte
from tokenflow.model import DEFAULT_MODEL, LoadedModel, added_conditioning, encode_prompt, load_model
from tokenflow.params import EditParams
from tokenflow.preview_decoder import PreviewDecoder
from tokenflow.sites import attention_stride, find_sites
from tokenflow.stats import EditStats

PREVIEW_MAX_FRAMES = 8
# Source frames decoded and hashed ahead of the encoder, and decoded chunks waiting for the
# finisher: enough to ride out jitter, few enough that a 4K clip's queue stays small.
READ_AHEAD_FRAMES = 8
FINISH_AHEAD_CHUNKS = 2


def _never() -> bool:
    return False


class _Clock:
    """Job-level ETA from UNet frame-evaluations: the unit every stage is priced in."""

    def __init__(self, stats: EditStats, planned_passes: int):
        self.stats = stats
        self.planned = max(1, planned_passes)
        # When the UNet work began: reading and VAE-encoding the clip come before it and are
        # no UNet pass, so pricing them as passes made the first ETA several times too long.
        self.unet_started: float | None = None

    def eta(self) -> float | None:
        done = sum(self.stats.unet_passes.values())
        now = self.stats.elapsed()
        if done == 0:
            self.unet_started = now  # the latest moment known to be before the first pass
            return None
        seconds = now - (self.unet_started or 0.0)
        return seconds / done * max(0, self.planned - done)


class Engine:
    """Holds a loaded model between jobs; `edit` runs one clip."""

    def __init__(self, model: str = DEFAULT_MODEL, device: str = "auto", cache_dir: str | Path | None = None,
                 model_config: str | None = None, loaded: LoadedModel | None = None, compile: bool = False,
                 preview_decoders: Mapping[str, str | Path] | None = None):
        started = time.perf_counter()
        self.model = loaded or load_model(model, device, model_config)
        self.sites = find_sites(self.model.unet)
        # Opt-in: compiled blocks, fed batches of one shape (padded), compile on first use.
        self.compiled = compile
        if compile:
            from tokenflow.compiled import compile_unet_blocks

            compile_unet_blocks(self.model.unet, keep_eager=(self.sites.pnp_conv,))
        self.cache = InversionCache(cache_dir)
        # Optional tiny autoencoder for previews, the model family's own (TAESD, TAESDXL) among
        # those found (family name -> folder); the full VAE decodes final frames only. One that
        # does not load, or only another family's, leaves previews to the full VAE (said in
        # preview_decoder_problem, for the caller to log once).
        self.preview_decoder, self.preview_decoder_problem = PreviewDecoder.for_family(
            preview_decoders or {}, self.model.family, self.model.device, self.model.unet_dtype)
        self.load_seconds = time.perf_counter() - started
        self._prompts: dict[str, torch.Tensor] = {}
        self.loras = LoraSet(self.model)  # the LoRA adapters loaded now (none until a job asks)

    def _prompt(self, text: str) -> torch.Tensor:
        if text not in self._prompts:
            self._prompts[text] = encode_prompt(self.model, text)
        return self._prompts[text]

    def _use_loras(self, wanted: tuple[str, ...]) -> None:
        """Load the job's LoRAs (kept loaded while jobs ask for the same set)."""
        if self.loras.use(wanted):
            self._prompts.clear()  # a LoRA may change the text encoders too

    @torch.no_grad()
    def _preview_pixels(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1] for a preview: the tiny decoder when there is one."""
        if self.preview_decoder is not None:
            return self.preview_decoder.decode(latents)
        vae = self.model.vae
        return vae.decode(latents.to(vae.device, vae.dtype) / self.model.vae_scale).sample

    def _invert_previewing_early(self, latents, schedule, params, state, stats, should_cancel, progress, run_loop):
        """Invert the first preview's frames first, show the edit on them, then invert the rest."""
        n_frames = latents.shape[0]
        latent_h, latent_w = latents.shape[-2:]
        stride = attention_stride(self.model.unet)
        max_joint = resolve_max_joint_keyframes(params.max_joint_keyframes, self.model.device.type, latent_h // stride,
                                                latent_w // stride)
        early = first_preview_frames(params, n_frames, max_joint)
        rest = [f for f in range(n_frames) if f not in set(early)]
        source_prompt = self._prompt(params.inversion_prompt)
        done_before = [0]

        def inverted_part(frames: list[int]) -> dict[int, torch.Tensor]:
            base = done_before[0]

            def on_step(done: int, total: int) -> None:
                frames_done = base + done * len(frames) // total
                progress("inversion", frames_done, n_frames, frames_done)

            with stats.timed("inversion"):
                # One branch instead of the edit's three: the same memory holds three times the frames.
                part = invert(self.model.unet, latents[frames], schedule, source_prompt, 3 * params.batch_size,
                              state, stats, should_cancel, on_step=on_step, pad_batches=self.compiled,
                              added=added_conditioning(self.model, params.inversion_prompt, stats.working_size))
            done_before[0] += len(frames)
            return part

        first_part = inverted_part(early)
        with stats.timed("early_preview"):
            preview_first_step(run_loop(first_part), early)
        parts = [(early, first_part)]
        if rest:
            parts.append((rest, inverted_part(rest)))
        return _merge_inversions(parts, n_frames)

    def edit(
        self,
        frames: Iterable[np.ndarray],
        n_frames: int,
        params: EditParams,
        on_event: EventSink | None = None,
        should_cancel: Callable[[], bool] = _never,
        matte: Iterable[np.ndarray] | None = None,
    ) -> EditStats:
        """Edit a clip. Emits Progress and Preview events, then FrameReady for every frame in order.

        `matte`: one greyscale picture per frame (params.matte says where the caller read it):
        the edit stays inside it and the source pixels outside are kept exactly.
        `params.variants`: more prompts edited in the same pass, sharing the inversion and the
        source branch; each gets its own Preview and FrameReady events (`variant` 1, 2, ...),
        its frames decoded after the first prompt's. Each variant's frames equal the same prompt edited alone."""
        # `params` was checked where it was made (bridge/wire/edit_params.py's `complete`).
        if n_frames < 1:
            raise InvalidInput("The clip has no frames: check the input and the --frames range.")
        emit = on_event or (lambda event: None)
        model = self.model
        stats = EditStats(method=params.method, device=str(model.device))
        devices.reset_peak_memory(model.device)
        self._use_loras(params.loras)  # before any work: a LoRA that does not fit is refused here
        try:
            return self._edit(frames, n_frames, params, emit, should_cancel, stats, matte, params.variants)
        except torch.OutOfMemoryError as exc:
            raise OutOfMemory(
                f"The GPU ran out of memory ({n_frames} frames at --size {self._short_side(params)}): try a smaller "
                "--size, fewer frames per batch, or a shorter --frames range."
            ) from exc

    def _short_side(self, params: EditParams) -> int:
        return native_short_side(self.model.family, params.short_side)

    def _edit(self, frames, n_frames, params, emit, should_cancel, stats, matte=None, variants=()) -> EditStats:
        if params.matte and matte is None:
            raise InvalidInput(f"A matte ({params.matte}) was asked for but none was read: this is a bug.")
        model = self.model
        schedule = ddim.make_schedule(model.scheduler, params.steps)
        steps = len(schedule.timesteps)
        edit_passes = (3 + 2 * len(variants)) * n_frames * steps  # the source branch is shared
        clock = _Clock(stats, n_frames * steps + edit_passes)
        source_size: list[tuple[int, int]] = []
        geos: list[Geometry] = []  # set by the first frame

        def sized(frames_in: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
            for frame in frames_in:
                if not source_size:
                    source_size.append((frame.shape[1], frame.shape[0]))
                    geos.append(geometry(*source_size[0], self._short_side(params)))
                    stats.working_size, stats.content_size = geos[0].padded, geos[0].content
                elif (frame.shape[1], frame.shape[0]) != source_size[0]:
                    raise InvalidInput("Frames of one clip must all have the same size.")
                yield frame

        def progress(stage: str, step: int, total: int, frames_done: int) -> None:
            emit(Progress(stage, step, total, frames_done, n_frames, stats.elapsed(), clock.eta()))

        iterator = iter(sized(frames))
        first = next(iterator, None)
        if first is None:
            raise InvalidInput("No frames were decoded from the input: check the file and the --frames range.")
        # The cache key is the source pixels' digest, so a re-edit knows it has the inversion
        # before any VAE work: it skips the encoder entirely and previews at once. The
        # frames, resized on the device, are kept until then (fp16 on a GPU: finer than
        # the 8-bit source; about the size of the inverted latents themselves).
        device = model.vae.device
        keep_dtype = torch.float16 if devices.is_gpu(device) else torch.float32
        digest = hashlib.sha256()
        prepared: list[torch.Tensor] = []
        sources: list[np.ndarray] = []  # kept for the matte's composite only (uint8, source size)

        def digested(frame: np.ndarray) -> None:  # on the read-ahead thread, in order
            digest.update(repr(frame.shape).encode())
            digest.update(frame.data)

        contiguous = (np.ascontiguousarray(frame) for frame in _chain(first, iterator))
        with stats.timed("read"), closing(read_ahead(contiguous, READ_AHEAD_FRAMES, digested)) as source:
            for count, frame in enumerate(source, 1):
                if matte is not None:
                    sources.append(frame)
                prepared.append(pad(to_model_input(frame, geos[0].content, device), geos[0]).to(keep_dtype))
                progress("read", count, n_frames, count)
        stats.frames = len(prepared)
        if stats.frames != n_frames:
            raise InvalidInput(f"Expected {n_frames} frames but the source gave {stats.frames}: the file may be truncated.")

        key = inversion_key(
            digest.hexdigest(), model.identity, tuple(geos[0].key()),
            schedule.timesteps, dict(model.scheduler.config), params.inversion_prompt, f"{model.unet_dtype}/{model.vae_dtype}",
            loras=self.loras.identity,
        )
        inverted = self.cache.get(key)
        latents = None
        if inverted is None:
            with stats.timed("encode"):
                latents = encode_frames(
                    model.vae, (x.to(model.vae.dtype) for x in prepared), stats.working_size, model.vae_scale,
                    chunk=params.batch_size, on_frame=lambda n: progress("encode", n, n_frames, n),
                )
        del prepared
        matted = None if matte is None else prepare_matte(
            matte, n_frames, geos[0], MatteOptions(params.matte_invert, params.matte_feather))
        state = TokenFlowState(self.sites)
        with installed(model.unet, state):
            texts = (params.inversion_prompt, params.negative_prompt, params.prompt, *variants)
            added = [added_conditioning(model, text, stats.working_size) for text in texts]
            source, negative, prompt, *more = (self._prompt(text) for text in texts)
            # SDXL: each prompt's pooled embedding goes with its own branch (none for SD 1.x/2.x).
            conditioning = Conditioning(
                source, negative, prompt, tuple(more),
                added=None if added[0] is None else tuple(added),  # pyright: ignore[reportArgumentType]
            )

            def preview(step: int, frame_indices: list[int], clean: torch.Tensor, variant: int = 0) -> None:
                chosen = _spread(len(frame_indices), PREVIEW_MAX_FRAMES)
                with stats.timed("preview"):
                    images = to_uint8(crop(self._preview_pixels(clean[chosen]), geos[0]),
                                      _preview_size(geos[0].content, params.preview_size))
                if stats.first_preview_seconds is None:
                    stats.first_preview_seconds = stats.elapsed()
                emit(Preview(step, tuple(frame_indices[i] for i in chosen), tuple(images), stats.elapsed(), variant))

            def run_loop(inverted_latents, **kwargs) -> EditLoop:
                return EditLoop(model.unet, schedule, inverted_latents, conditioning, params, state, stats,
                                should_cancel, on_keyframes=preview, pad_batches=self.compiled,
                                latent_matte=None if matted is None else matted.latent, **kwargs)

            stats.inversion_cached = inverted is not None
            if inverted is None:
                inverted = self._invert_previewing_early(latents, schedule, params, state, stats, should_cancel,
                                                         progress, run_loop)
                self.cache.put(key, compact(inverted, schedule.timesteps[0], model.unet_dtype))
            else:
                clock.planned = edit_passes

            loop = run_loop(
                inverted,
                on_step=lambda index, done, total: progress("edit", index, steps, done),
                previewed_first_step=not stats.inversion_cached,
            )
            with stats.timed("edit"):
                results = loop.run_all()
            edited = results[0]
            # Kept for inspection (tests, benchmarks): what the last edit drew and produced.
            self.last_keyframes = loop.keyframe_history
            self.last_latents = edited
            self.last_variant_latents = results

        if self.preview_decoder is not None:
            # Every prompt's finished frames at once, from the tiny decoder: proxies within a
            # fraction of the full decode's time, all before its first frame.
            with stats.timed("preview"):
                for variant, variant_latents in enumerate(results):
                    for start in range(0, n_frames, params.batch_size):
                        chunk = list(range(start, min(n_frames, start + params.batch_size)))
                        images = to_uint8(crop(self._preview_pixels(variant_latents[chunk]), geos[0]),
                                          _preview_size(geos[0].content, params.preview_size))
                        emit(Preview(steps, tuple(chunk), tuple(images), stats.elapsed(), variant))
        finished = [0]
        total = n_frames * len(results)  # every prompt's frames, the first prompt's first

        def finish(images: torch.Tensor) -> None:
            """On the finisher thread: the pad cropped, the resize to the source size, the
            conversion to the host's 8 bit and float, the matte's composite, and whatever
            the caller does with each frame."""
            for image, precise in finish_decoded(images, source_size[0], with_float=True, geo=geos[0]):
                if should_cancel():
                    raise Cancelled()
                variant, index = divmod(finished[0], n_frames)
                if matted is not None:
                    image, precise = matted.composite(index, sources[index], image, precise)
                emit(FrameReady(index, image, precise, variant))
                finished[0] += 1
                progress("decode", finished[0], total, finished[0])

        with stats.timed("decode"), Finisher(finish, FINISH_AHEAD_CHUNKS, should_cancel, Cancelled) as finisher:
            for latents in results:  # chunks never straddle two prompts: each starts at its frame 0
                for images in decode_chunks(model.vae, latents, model.vae_scale, chunk=params.batch_size):
                    finisher.put(images)
        stats.finish(model.device)
        return stats


def _merge_inversions(parts: list[tuple[list[int], dict[int, torch.Tensor]]], n_frames: int) -> dict[int, torch.Tensor]:
    merged: dict[int, torch.Tensor] = {}
    for t in parts[0][1]:
        first = parts[0][1][t]
        full = torch.empty((n_frames, *first.shape[1:]), dtype=first.dtype, device=first.device)
        for frames, latents in parts:
            full[device_index(frames, first.device)] = latents[t]
        merged[t] = full
    return merged


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def _spread(count: int, limit: int) -> list[int]:
    if count <= limit:
        return list(range(count))
    return sorted({round(i * (count - 1) / (limit - 1)) for i in range(limit)})


def _preview_size(size: tuple[int, int], short_side: int) -> tuple[int, int]:
    w, h = size
    scale = min(1.0, short_side / min(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))
