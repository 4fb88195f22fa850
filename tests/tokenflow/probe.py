"""Observing the edit loop at the sites where TokenFlow acts, from outside the engine.

`Probe` hooks the UNet itself (its inputs and outputs), every self-attention module
(inputs and outputs), the PnP conv (its output after the engine's injection hook), and
the attention kernel (`F.scaled_dot_product_attention`, to see the queries, keys and
values actually used). It reads nothing the engine records about itself, so a test
built on it sees what the UNet computed, not what the engine says it computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tokenflow import ddim
from tokenflow.attention import BRANCHES, EDIT, EDITED, TokenFlowState, installed
from tokenflow.editor import Conditioning, EditLoop
from tokenflow.model import added_conditioning, encode_prompt
from tokenflow.params import EditParams
from tokenflow.stats import EditStats


@dataclass
class LayerCall:
    input: torch.Tensor  # (3F, N, C): attn1's input (the block's LayerNorm output)
    output: torch.Tensor | None = None  # (3F, N, C)
    kernel_calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def branch_qkv(self, frames: int) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """q, k, v per branch, each (F, heads, N, d), however the engine laid out its kernel calls."""
        out: tuple[list, list, list] = ([], [], [])
        if len(self.kernel_calls) == 1:  # one call over the whole [source | uncond | cond] batch
            for which, x in enumerate(self.kernel_calls[0]):
                out[which].extend(x.chunk(BRANCHES))
        elif len(self.kernel_calls) == 2:  # the source branch's call, then [uncond | cond]'s
            for which, (source, edited) in enumerate(zip(*self.kernel_calls)):
                out[which].append(source)
                out[which].extend(edited.chunk(EDITED))
        elif len(self.kernel_calls) == BRANCHES:  # source alone, then each edited branch jointly
            for call in self.kernel_calls:
                for which, x in enumerate(call):
                    if x.shape[0] == frames:
                        out[which].append(x)
                    else:  # (1, heads, F*N, d) -> (F, heads, N, d)
                        heads, dim = x.shape[1], x.shape[-1]
                        out[which].append(x[0].reshape(heads, frames, -1, dim).transpose(0, 1))
        else:
            raise AssertionError(f"unexpected attention kernel calls: {len(self.kernel_calls)}")
        return out


@dataclass
class UNetCall:
    step: int
    mode: str
    frames: list[int]
    plan: list  # state.plan when the call was made
    sample: torch.Tensor  # (3F, 4, h, w)
    text: torch.Tensor  # (3F, 77, D)
    output: torch.Tensor | None = None
    conv: torch.Tensor | None = None  # the PnP conv's output after injection
    layers: dict[str, LayerCall] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.frames)

    def branch(self, x: torch.Tensor, which: int) -> torch.Tensor:
        return x[which * self.n : (which + 1) * self.n]


class Probe:
    """Hooks installed for one `EditLoop.run()`; `calls` holds every UNet call in order."""

    def __init__(self, unet, state: TokenFlowState, timesteps: tuple[int, ...]):
        self.unet, self.state, self.timesteps = unet, state, timesteps
        self.calls: list[UNetCall] = []
        # The engine runs a batch as two UNet calls (the source branch, then [uncond | cond]);
        # the probe joins them into one [source | uncond | cond] call, the method's picture.
        self._joining = False
        self._layer: str | None = None
        self._handles: list = []

    def __enter__(self) -> Probe:
        unet, state = self.unet, self.state

        def unet_in(module, args, kwargs):
            sample, t = args[0], args[1]
            self._joining = state.role == EDIT
            if self._joining:
                call = self.calls[-1]
                call.sample = torch.cat([call.sample, sample])
                call.text = torch.cat([call.text, kwargs["encoder_hidden_states"]])
                return
            self.calls.append(UNetCall(self.timesteps.index(int(t)), state.mode, list(state.frames), list(state.plan),
                                       sample.clone(), kwargs["encoder_hidden_states"].clone()))

        def unet_out(module, args, kwargs, output):
            call = self.calls[-1]
            call.output = _joined(call.output if self._joining else None, output.sample)

        self._handles += [unet.register_forward_pre_hook(unet_in, with_kwargs=True),
                          unet.register_forward_hook(unet_out, with_kwargs=True)]
        for name in state.sites.self_attention:
            self._handles += self._layer_hooks(unet.get_submodule(name), name)
        conv = unet.get_submodule(state.sites.pnp_conv)
        self._handles.append(conv.register_forward_hook(lambda m, a, out: setattr(
            self.calls[-1], "conv", _joined(self.calls[-1].conv if self._joining else None, out))))
        self._sdpa = F.scaled_dot_product_attention

        def kernel(q, k, v, *args, **kwargs):
            if self._layer is not None:
                self.calls[-1].layers[self._layer].kernel_calls.append((q.clone(), k.clone(), v.clone()))
            return self._sdpa(q, k, v, *args, **kwargs)

        F.scaled_dot_product_attention = kernel
        return self

    def _layer_hooks(self, module, name: str) -> list:
        def enter(m, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            layers = self.calls[-1].layers
            if self._joining and name in layers:
                layers[name].input = torch.cat([layers[name].input, hidden])
            else:
                layers[name] = LayerCall(hidden.clone())
            self._layer = name

        def leave(m, args, kwargs, output):
            layer = self.calls[-1].layers[name]
            layer.output = _joined(layer.output if self._joining else None, output)
            self._layer = None

        return [module.register_forward_pre_hook(enter, with_kwargs=True),
                module.register_forward_hook(leave, with_kwargs=True)]

    def __exit__(self, *exc) -> None:
        F.scaled_dot_product_attention = self._sdpa
        for handle in self._handles:
            handle.remove()

    def at(self, step: int, mode: str | None = None) -> list[UNetCall]:
        return [c for c in self.calls if c.step == step and (mode is None or c.mode == mode)]


def _joined(before: torch.Tensor | None, more: torch.Tensor) -> torch.Tensor:
    return more.clone() if before is None else torch.cat([before, more])


def random_inversion(schedule: ddim.Schedule, n_frames: int, size: int = 8, seed: int = 0) -> dict[int, torch.Tensor]:
    """Stand-in inverted latents, one (N, 4, size, size) tensor per sampling timestep."""
    generator = torch.Generator().manual_seed(seed)
    return {t: torch.randn(n_frames, 4, size, size, generator=generator) for t in schedule.timesteps}


def conditioning(model, params: EditParams, working_size: tuple[int, int] = (64, 64)) -> Conditioning:
    texts = (params.inversion_prompt, params.negative_prompt, params.prompt)
    added = [added_conditioning(model, text, working_size) for text in texts]
    return Conditioning(*[encode_prompt(model, text) for text in texts],
                        added=None if added[0] is None else tuple(added))  # pyright: ignore[reportArgumentType]


def probed_run(engine, params: EditParams, inverted: dict[int, torch.Tensor] | None = None, n_frames: int = 6,
               pad_batches: bool = False) -> tuple[EditLoop, Probe, torch.Tensor, dict[int, torch.Tensor]]:
    """Run the engine's edit loop with a probe on the sites; returns (loop, probe, latents, inverted)."""
    model = engine.model
    schedule = ddim.make_schedule(model.scheduler, params.steps)
    inverted = inverted if inverted is not None else random_inversion(schedule, n_frames)
    state = TokenFlowState(engine.sites)
    loop = EditLoop(model.unet, schedule, inverted, conditioning(model, params), params, state, EditStats(),
                    lambda: False, pad_batches=pad_batches)
    with installed(model.unet, state), Probe(model.unet, state, schedule.timesteps) as probe:
        latents = loop.run()
    return loop, probe, latents, inverted
