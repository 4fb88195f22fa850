"""TokenFlow's behaviour inside the UNet, added through diffusers' extension points.

An attention processor on every self-attention layer (extended attention across
keyframes, PnP query/key injection, token propagation) and a forward hook on one
decoder conv (PnP residual injection). Both read one shared `TokenFlowState` that
the edit loop sets before each UNet call; both are installed and removed cleanly.

Each batch of B frames is two kinds of UNet call (`TokenFlowState.role`): first the
source branch alone (B inverted latents, the inversion prompt), which records what the
edited branches take from it (PnP queries and keys, the conv features, the tokens'
nearest neighbours); then, for each prompt of the edit (its variants), one call over
that variant's [unconditional | conditional] branches (2B), which reads the record. The
source branch is computed once per batch and step however many variants share it, and
every variant's calls have the same shapes and inputs as when it is edited alone, so
its result is the same to the bit (tests/tokenflow/test_variants.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from tokenflow.keyframes import Neighbours
from tokenflow.sites import Sites

BRANCHES = 3  # source, unconditional, conditional: UNet frame-evaluations per frame and step for one prompt
EDITED = 2  # the branches of one variant's call: [unconditional | conditional]
SOURCE = "source"  # role of the call over the source branch
EDIT = "edit"  # role of a variant's call

PLAIN = "plain"  # ordinary attention, no injection (inversion, single branch)
PER_FRAME = "per_frame"  # ordinary per-frame attention, with PnP injection
KEYFRAMES = "keyframes"  # joint attention across keyframes, caches filled
PROPAGATE = "propagate"  # attention replaced by tokens copied from keyframes


@dataclass
class LayerCache:
    """What the keyframe pass leaves behind for one self-attention layer, per keyframe."""

    source_outputs: dict[int, torch.Tensor] = field(default_factory=dict)  # frame -> (N, C)
    outputs: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict)  # (variant, frame) -> (2, N, C)
    # frame -> (N, C) source-branch features, unit-normalised once here rather than once
    # per frame that matches against them.
    source_features: dict[int, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class PlanIndex:
    """A propagation batch's plan as device tensors, built once per batch for all layers."""

    keyframes: tuple[int, ...]  # the keyframes the batch reads, in the order they are stacked
    before: torch.Tensor  # (B,) position in `keyframes` of each frame's keyframe before
    after: torch.Tensor  # (B,) ... and after
    weight_before: torch.Tensor  # (B,) float32

    @classmethod
    def build(cls, plan: list[Neighbours], device: torch.device) -> PlanIndex:
        keyframes = tuple(sorted({n.before for n in plan} | {n.after for n in plan}))
        position = {f: i for i, f in enumerate(keyframes)}
        before = torch.tensor([position[n.before] for n in plan])
        after = torch.tensor([position[n.after] for n in plan])
        weight = torch.tensor([n.weight_before for n in plan], dtype=torch.float32)
        return cls(keyframes, before.to(device, non_blocking=True), after.to(device, non_blocking=True),
                   weight.to(device, non_blocking=True))


@dataclass
class TokenFlowState:
    sites: Sites
    mode: str = PLAIN
    inject_attention: bool = False
    inject_conv: bool = False
    frames: list[int] = field(default_factory=list)  # clip frame index of each batch item (per branch)
    plan: list[Neighbours] = field(default_factory=list)  # PROPAGATE: one per batch item
    plan_index: PlanIndex | None = None  # PROPAGATE: the same plan as device tensors
    cache_frames: set[int] = field(default_factory=set)  # KEYFRAMES: whose tokens to keep
    caches: dict[str, LayerCache] = field(default_factory=dict)
    role: str = SOURCE  # SOURCE or EDIT: which call of a batch this is
    variant: int = 0  # EDIT: whose branches
    # Left by the source call for the edit calls of the same batch, by layer: injected
    # queries/keys, the conv features, the tokens' nearest keyframe tokens.
    recorded: dict[str, torch.Tensor] = field(default_factory=dict)

    def drop_caches(self, keep: set[int]) -> None:
        for cache in self.caches.values():
            for store in (cache.source_outputs, cache.source_features):
                for frame in [f for f in store if f not in keep]:
                    del store[frame]
            for key in [key for key in cache.outputs if key[1] not in keep]:
                del cache.outputs[key]


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


def normalized(features: torch.Tensor) -> torch.Tensor:
    """Unit-length tokens, normalised in fp32 (fp16 norms overflow), returned in the working dtype."""
    return F.normalize(features.float(), dim=-1).to(features.dtype)


def nearest_tokens(features: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """For each token of `features` (N, C), the index of its cosine-nearest token in `reference` (M, C)."""
    return (normalized(features) @ normalized(reference).T).argmax(dim=-1)


def match_tokens(source_features: torch.Tensor, index: PlanIndex, cache: LayerCache) -> torch.Tensor:
    """(2, B, N): for every token of B frames, its cosine-nearest token in the keyframe before
    and in the keyframe after, matched on the *source* branch features. One matmul against
    both neighbours' (normalised) tokens, one argmax; no per-frame loop, no host synchronisation."""
    tokens = source_features.shape[1]
    references = torch.stack([cache.source_features[f] for f in index.keyframes])  # (K, N, C), normalised
    both = torch.cat([references[index.before], references[index.after]], dim=1)  # (B, 2N, C)
    similarity = torch.bmm(normalized(source_features), both.transpose(1, 2))  # (B, N, 2N)
    return torch.stack([similarity[..., :tokens].argmax(dim=-1), similarity[..., tokens:].argmax(dim=-1)])


def blend_tokens(outputs: torch.Tensor, index: PlanIndex, matches: torch.Tensor) -> torch.Tensor:
    """New self-attention outputs (R, B, N, C) from the keyframes' outputs (K, R, N, C) of R
    branches: w * T_before[nn_before] + (1 - w) * T_after[nn_after] for every token, the
    same matches for every branch."""
    branches, channels = outputs.shape[1], outputs.shape[-1]
    batch = matches.shape[1]

    def gathered(which: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
        return torch.gather(outputs[which], 2, match[:, None, :, None].expand(-1, branches, -1, channels))

    weight = index.weight_before.view(batch, 1, 1, 1)
    # Blend in fp32: fp16 weights would round by ~1e-3. A weight of 1 gives T_before exactly.
    blended = gathered(index.before, matches[0]).float() * weight + gathered(index.after, matches[1]).float() * (1 - weight)
    return blended.to(outputs.dtype).transpose(0, 1)


def propagate_tokens(source_features: torch.Tensor, index: PlanIndex, cache: LayerCache,
                     variant: int | None = None) -> torch.Tensor:
    """Propagated outputs of B frames: the source branch's (1, B, N, C), or a variant's
    edited branches' (2, B, N, C), from the keyframes' cached outputs."""
    if variant is None:
        outputs = torch.stack([cache.source_outputs[f] for f in index.keyframes])[:, None]
    else:
        outputs = torch.stack([cache.outputs[(variant, f)] for f in index.keyframes])
    return blend_tokens(outputs, index, match_tokens(source_features, index, cache))


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

        inject = state.inject_attention and self.name in state.sites.pnp_attention
        if state.role == SOURCE:
            if inject:
                state.recorded[self.name + ":q"], state.recorded[self.name + ":k"] = q, k
            # The source branch attends per frame, keyframes included.
            out = _project_out(attn, _merge_heads(F.scaled_dot_product_attention(q, k, v)), residual)
            if state.mode == KEYFRAMES:
                self._fill_source_cache(hidden_states, out)
            return out

        frames = hidden_states.shape[0] // EDITED
        if inject:
            # PnP: the edited branches take the source's queries and keys (not values).
            q = torch.cat([state.recorded[self.name + ":q"]] * EDITED)
            k = torch.cat([state.recorded[self.name + ":k"]] * EDITED)

        if state.mode == KEYFRAMES:
            parts = []
            for branch in range(EDITED):
                part = slice(branch * frames, (branch + 1) * frames)
                parts.append(joint_attention(q[part], k[part], v[part]))
            out = _project_out(attn, _merge_heads(torch.cat(parts)), residual)
            self._fill_cache(out)
            return out

        out = F.scaled_dot_product_attention(q, k, v)  # PER_FRAME
        return _project_out(attn, _merge_heads(out), residual)

    def _fill_source_cache(self, source_features: torch.Tensor, out: torch.Tensor) -> None:
        cache = self.state.caches.setdefault(self.name, LayerCache())
        for i, frame in enumerate(self.state.frames):
            if frame in self.state.cache_frames:  # anchors lend context only; their own group keeps their tokens
                cache.source_outputs[frame] = out[i]
                cache.source_features[frame] = normalized(source_features[i])

    def _fill_cache(self, out: torch.Tensor) -> None:
        cache = self.state.caches.setdefault(self.name, LayerCache())
        frames = len(self.state.frames)
        by_branch = out.view(EDITED, frames, *out.shape[1:])
        for i, frame in enumerate(self.state.frames):
            if frame in self.state.cache_frames:
                cache.outputs[(self.state.variant, frame)] = by_branch[:, i]

    def _propagate(self, hidden_states: torch.Tensor) -> torch.Tensor:
        state = self.state
        cache = state.caches[self.name]
        index = state.plan_index
        assert index is not None, "the editor builds plan_index whenever it enters PROPAGATE mode"
        key = self.name + ":match"
        if state.role == SOURCE:
            state.recorded[key] = match_tokens(hidden_states, index, cache)  # the edit calls reuse them
            outputs = torch.stack([cache.source_outputs[f] for f in index.keyframes])[:, None]
        else:
            outputs = torch.stack([cache.outputs[(state.variant, f)] for f in index.keyframes])
        out = blend_tokens(outputs, index, state.recorded[key])
        return out.reshape(-1, *out.shape[2:]).to(hidden_states.dtype)


def _conv_injection_hook(state: TokenFlowState):
    def hook(module, inputs, output: torch.Tensor) -> torch.Tensor:
        if state.mode == PLAIN or not state.inject_conv:
            return output
        # PnP residual features: the source branch's, over both edited branches, before
        # the resnet adds its shortcut.
        if state.role == SOURCE:
            state.recorded["conv"] = output
            return output
        return torch.cat([state.recorded["conv"]] * EDITED)

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
