"""TokenFlow's behaviour inside the UNet, added through diffusers' extension points.

An attention processor on every self-attention layer (extended attention across
keyframes, PnP query/key injection, token propagation) and a forward hook on one
decoder conv (PnP residual injection). Both read one shared `TokenFlowState` that
the edit loop sets before each UNet call; both are installed and removed cleanly.

Batches entering the UNet are laid out as three branches of B frames each:
[source | unconditional | conditional].
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F

from tokenflow.keyframes import Neighbours
from tokenflow.sites import Sites

BRANCHES = 3

PLAIN = "plain"  # ordinary attention, no injection (inversion, single branch)
PER_FRAME = "per_frame"  # ordinary per-frame attention, with PnP injection
KEYFRAMES = "keyframes"  # joint attention across keyframes, caches filled
PROPAGATE = "propagate"  # attention replaced by tokens copied from keyframes


@dataclass
class LayerCache:
    """What the keyframe pass leaves behind for one self-attention layer, per keyframe."""

    outputs: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (3, N, C)
    source_features: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (N, C)


@dataclass
class TokenFlowState:
    sites: Sites
    mode: str = PLAIN
    inject_attention: bool = False
    inject_conv: bool = False
    frames: list[int] = field(default_factory=list)  # clip frame index of each batch item (per branch)
    plan: list[Neighbours] = field(default_factory=list)  # PROPAGATE: one per batch item
    cache_frames: set[int] = field(default_factory=set)  # KEYFRAMES: whose tokens to keep
    caches: dict[str, LayerCache] = field(default_factory=dict)

    def drop_caches(self, keep: set[int]) -> None:
        for cache in self.caches.values():
            for store in (cache.outputs, cache.source_features):
                for frame in [f for f in store if f not in keep]:
                    del store[frame]


def _heads(attn, x: torch.Tensor) -> torch.Tensor:
    batch, tokens, inner = x.shape
    return x.view(batch, tokens, attn.heads, inner // attn.heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, tokens, dim = x.shape
    return x.transpose(1, 2).reshape(batch, tokens, heads * dim)


def _project_out(attn, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    hidden = attn.to_out[0](hidden)
    hidden = attn.to_out[1](hidden)
    if attn.residual_connection:
        hidden = hidden + residual
    return hidden / attn.rescale_output_factor


def joint_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Every frame's queries attend to the keys/values of all frames in the batch.

    q, k, v: (F, heads, N, d). Because all frames share one key/value set, the queries
    are concatenated too: one fused SDPA call over (1, heads, F*N, d), no per-frame
    copies of keys and values (the public code repeats them F times).
    """
    frames, heads, tokens, dim = q.shape

    def flat(x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1).reshape(1, heads, frames * tokens, dim)

    out = F.scaled_dot_product_attention(flat(q), flat(k), flat(v))
    return out.reshape(heads, frames, tokens, dim).transpose(0, 1)


def nearest_tokens(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each token of `features` (N, C), the index of its cosine-nearest token in `reference` (M, C)."""
    # Normalise in fp32 (fp16 norms overflow), match in the working dtype (tensor cores).
    a = F.normalize(features.float(), dim=-1).to(features.dtype)
    b = F.normalize(reference.float(), dim=-1).to(features.dtype)
    return (a @ b.T).argmax(dim=-1)


def propagate_tokens(
    source_features: torch.Tensor,
    plan: list[Neighbours],
    cache: LayerCache,
) -> torch.Tensor:
    """New self-attention outputs (3, B, N, C) for B frames, blended from keyframe outputs.

    For every token: w * T_before[nn_before] + (1 - w) * T_after[nn_after], where the
    nearest neighbours are found on the *source* branch features and the same indices
    serve all three branches.
    """
    rows = []
    for features, where in zip(source_features, plan):
        nn_before = nearest_tokens(features, cache.source_features[where.before])
        blended = cache.outputs[where.before][:, nn_before] * where.weight_before
        if where.weight_before < 1.0:
            nn_after = nearest_tokens(features, cache.source_features[where.after])
            blended = blended + cache.outputs[where.after][:, nn_after] * (1.0 - where.weight_before)
        rows.append(blended)
    return torch.stack(rows, dim=1)


class TokenFlowAttnProcessor:
    """Self-attention processor for one layer; behaviour chosen by the shared state."""

    def __init__(self, name: str, state: TokenFlowState):
        self.name = name
        self.state = state

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, *args, **kwargs) -> torch.Tensor:
        state = self.state
        if hidden_states.ndim != 3 or encoder_hidden_states is not None or attention_mask is not None:
            raise RuntimeError(f"{self.name}: unexpected self-attention call (SD 1.x/2.x layout expected)")
        residual = hidden_states
        if state.mode == PROPAGATE:
            return self._propagate(hidden_states)

        q = _heads(attn, attn.to_q(hidden_states))
        k = _heads(attn, attn.to_k(hidden_states))
        v = _heads(attn, attn.to_v(hidden_states))
        if state.mode == PLAIN:
            out = F.scaled_dot_product_attention(q, k, v)
            return _project_out(attn, _merge_heads(out), residual)

        frames = hidden_states.shape[0] // BRANCHES
        if state.inject_attention and self.name in state.sites.pnp_attention:
            # PnP: the edited branches take the source's queries and keys (not values).
            q = torch.cat([q[:frames]] * BRANCHES)
            k = torch.cat([k[:frames]] * BRANCHES)

        if state.mode == KEYFRAMES:
            parts = [F.scaled_dot_product_attention(q[:frames], k[:frames], v[:frames])]
            for branch in (1, 2):
                part = slice(branch * frames, (branch + 1) * frames)
                parts.append(joint_attention(q[part], k[part], v[part]))
            out = _project_out(attn, _merge_heads(torch.cat(parts)), residual)
            self._fill_cache(hidden_states[:frames], out)
            return out

        out = F.scaled_dot_product_attention(q, k, v)  # PER_FRAME
        return _project_out(attn, _merge_heads(out), residual)

    def _fill_cache(self, source_features: torch.Tensor, out: torch.Tensor) -> None:
        cache = self.state.caches.setdefault(self.name, LayerCache())
        frames = len(self.state.frames)
        by_branch = out.view(BRANCHES, frames, *out.shape[1:])
        for i, frame in enumerate(self.state.frames):
            if frame not in self.state.cache_frames:
                continue  # anchors lend context only; their own group keeps their tokens
            cache.outputs[frame] = by_branch[:, i]
            cache.source_features[frame] = source_features[i]

    def _propagate(self, hidden_states: torch.Tensor) -> torch.Tensor:
        frames = hidden_states.shape[0] // BRANCHES
        cache = self.state.caches[self.name]
        out = propagate_tokens(hidden_states[:frames], self.state.plan, cache)
        return out.reshape(BRANCHES * frames, *out.shape[2:]).to(hidden_states.dtype)


def _conv_injection_hook(state: TokenFlowState):
    def hook(module, inputs, output: torch.Tensor) -> torch.Tensor:
        if state.mode == PLAIN or not state.inject_conv:
            return output
        frames = output.shape[0] // BRANCHES
        # PnP residual features: source branch copied over both edited branches,
        # before the resnet adds its shortcut.
        return torch.cat([output[:frames]] * BRANCHES)

    return hook


@contextlib.contextmanager
def installed(unet, state: TokenFlowState) -> Iterator[TokenFlowState]:
    """Install the processors and the conv hook; restore the UNet exactly on exit."""
    original = dict(unet.attn_processors)
    replaced = {
        key: (TokenFlowAttnProcessor(key[: -len(".processor")], state)
              if key[: -len(".processor")] in state.sites.self_attention else processor)
        for key, processor in original.items()
    }
    conv = unet.get_submodule(state.sites.pnp_conv)
    handle = conv.register_forward_hook(_conv_injection_hook(state))
    unet.set_attn_processor(replaced)
    try:
        yield state
    finally:
        handle.remove()
        unet.set_attn_processor(original)
