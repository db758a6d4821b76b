"""GPT-2 as a workload graph (timing side, no weights): prefill and token-by-token decode.

Ops of one token group (a prefill chunk or a decode step), in order: embedding (wte +
wpe rows from DRAM); per block ln_1, attn.c_attn, kv_write, [kv_read in decode], QK^T,
softmax, AV, attn.c_proj, residual add, ln_2, mlp.c_fc, GELU, mlp.c_proj, residual
add; then ln_f and lm_head.

Attention is causal and its MACs are counted honestly: a query at position p meets
the p + 1 keys 0..p. In prefill the K/V of earlier chunks stay on chip (QK^T of chunk
c depends on c_attn of chunks 0..c) and each chunk also writes its K/V to the DRAM
cache for the decode that follows. In decode each step reads the cached K/V of all
earlier positions (issued when the layer starts, after the previous step's write)
and appends its own; step t's embedding waits for step t-1's lm_head (token feedback).
`logits="all"` computes logits for every prompt token (perplexity-style), `"last"`
only for the last token of each sequence; decode always computes them for its token.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import UserError
from simulator.ir.graph import Graph, OpKind, Projection
from workloads.graph_builder import (OpList, causal_key_pairs, check_run_shape, chunk_spans,
                                     config_int)

PHASES = ("prefill", "decode")
LOGITS_CHOICES = ("all", "last")


@dataclass(frozen=True)
class GPT2Shape:
    """The sizes of an HF GPT-2 config that the graph depends on."""

    n_layer: int
    n_embd: int
    n_head: int
    n_inner: int
    vocab_size: int
    n_positions: int

    @classmethod
    def from_config(cls, config: dict, source: str) -> "GPT2Shape":
        n_embd = config_int(config, "n_embd", source)
        n_head = config_int(config, "n_head", source)
        if n_embd % n_head:
            raise UserError(f"{source}: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        n_inner = 4 * n_embd if config.get("n_inner") is None else config_int(config, "n_inner", source)
        return cls(n_layer=config_int(config, "n_layer", source), n_embd=n_embd, n_head=n_head,
                   n_inner=n_inner, vocab_size=config_int(config, "vocab_size", source),
                   n_positions=config_int(config, "n_positions", source))


def gpt2_projections(shape: GPT2Shape) -> tuple[Projection, ...]:
    """The 4 * n_layer + 1 static-weight Linears, in model order, named as in HF."""
    e, inner = shape.n_embd, shape.n_inner
    projections = []
    for layer in range(shape.n_layer):
        prefix = f"transformer.h.{layer}"
        for suffix, in_features, out_features in (("attn.c_attn", e, 3 * e), ("attn.c_proj", e, e),
                                                  ("mlp.c_fc", e, inner), ("mlp.c_proj", inner, e)):
            projections.append(Projection(f"{prefix}.{suffix}", in_features, out_features,
                                          has_bias=True, layer=layer))
    projections.append(Projection("lm_head", e, shape.vocab_size, has_bias=False))
    return tuple(projections)


@dataclass(frozen=True)
class _TokenGroup:
    """Token positions [start, stop) processed together: a prefill chunk or a decode step."""

    index: int
    tag: str  # op name suffix: "c3" (chunk 3) or "s3" (decode step 3)
    start: int
    stop: int
    from_cache: bool  # past K/V come from the DRAM cache (decode)
    logit_rows_per_sequence: int  # 0: no lm_head for this group


def _token_groups(phase: str, seq: int, new_tokens: int, chunk_tokens: int | None,
                  logits: str) -> list[_TokenGroup]:
    if phase == "decode":
        return [_TokenGroup(step, f"s{step}", seq + step, seq + step + 1, True, 1)
                for step in range(new_tokens)]
    spans = chunk_spans(seq, chunk_tokens)
    last = len(spans) - 1
    return [_TokenGroup(i, f"c{i}", start, stop, False,
                        stop - start if logits == "all" else int(i == last))
            for i, (start, stop) in enumerate(spans)]


class _GPT2Emitter:
    """Emits the ops of token groups one after another, remembering what later groups need."""

    def __init__(self, shape: GPT2Shape, batch: int):
        self.shape = shape
        self.batch = batch
        self.ops = OpList()
        self.projections = gpt2_projections(shape)
        self._proj = {p.name: p for p in self.projections}
        self._c_attn_ids: list[list[int]] = [[] for _ in range(shape.n_layer)]
        self._last_kv_write: list[tuple[int, ...]] = [() for _ in range(shape.n_layer)]
        self._last_lm_head: tuple[int, ...] = ()

    def group(self, g: _TokenGroup) -> None:
        rows = self.batch * (g.stop - g.start)
        e = self.shape.n_embd
        feedback = self._last_lm_head if g.from_cache else ()
        x = self.ops.embedding(f"transformer.wte+wpe#{g.tag}", rows, 2 * e, e, 1, feedback, g.index)
        for layer in range(self.shape.n_layer):
            x = self._block(layer, g, x, rows)
        if g.logit_rows_per_sequence:
            logit_rows = self.batch * g.logit_rows_per_sequence
            ln_f = self.ops.elementwise(f"transformer.ln_f#{g.tag}", OpKind.LAYERNORM, logit_rows,
                                        e, (x,), layer=-1, chunk=g.index)
            self._last_lm_head = (self.ops.linear(self._proj["lm_head"], g.tag, logit_rows,
                                                  (ln_f,), g.index),)

    def _block(self, layer: int, g: _TokenGroup, x: int, rows: int) -> int:
        ops, s, tag, chunk = self.ops, self.shape, g.tag, g.index
        p = f"transformer.h.{layer}"
        e = s.n_embd
        ln_1 = ops.elementwise(f"{p}.ln_1#{tag}", OpKind.LAYERNORM, rows, e, (x,),
                               layer=layer, chunk=chunk)
        c_attn = ops.linear(self._proj[f"{p}.attn.c_attn"], tag, rows, (ln_1,), chunk)
        kv_write = ops.cache_transfer(f"{p}.attn.kv_write#{tag}", OpKind.KV_WRITE, rows,
                                      rows * 2 * e, (c_attn,), heads=self.batch * s.n_head,
                                      layer=layer, chunk=chunk)
        if g.from_cache:
            kv_read = ops.cache_transfer(f"{p}.attn.kv_read#{tag}", OpKind.KV_READ, rows,
                                         self.batch * g.start * 2 * e,
                                         (x, *self._last_kv_write[layer]), heads=self.batch * s.n_head,
                                         layer=layer, chunk=chunk)
            key_sources = (c_attn, kv_read)
        else:
            key_sources = (*self._c_attn_ids[layer], c_attn)
        self._c_attn_ids[layer].append(c_attn)
        self._last_kv_write[layer] = (kv_write,)
        av = ops.attention(f"{p}.attn", tag, batch=self.batch, queries=g.stop - g.start,
                           key_pairs=causal_key_pairs(g.start, g.stop), keys=g.stop,
                           n_head=s.n_head, head_dim=e // s.n_head, qk_deps=key_sources,
                           layer=layer, chunk=chunk)
        attn_out = ops.linear(self._proj[f"{p}.attn.c_proj"], tag, rows, (av,), chunk)
        h = ops.elementwise(f"{p}.attn.residual#{tag}", OpKind.ADD, rows, e, (attn_out, x),
                            layer=layer, chunk=chunk, operands=2)
        ln_2 = ops.elementwise(f"{p}.ln_2#{tag}", OpKind.LAYERNORM, rows, e, (h,),
                               layer=layer, chunk=chunk)
        c_fc = ops.linear(self._proj[f"{p}.mlp.c_fc"], tag, rows, (ln_2,), chunk)
        gelu = ops.elementwise(f"{p}.mlp.gelu#{tag}", OpKind.GELU, rows, s.n_inner, (c_fc,),
                               layer=layer, chunk=chunk)
        mlp_out = ops.linear(self._proj[f"{p}.mlp.c_proj"], tag, rows, (gelu,), chunk)
        return ops.elementwise(f"{p}.mlp.residual#{tag}", OpKind.ADD, rows, e, (mlp_out, h),
                               layer=layer, chunk=chunk, operands=2)


def build_gpt2_graph(config: dict, phase: str, *, model: str = "gpt2", source: str = "gpt2",
                     batch: int = 1, seq: int = 128, new_tokens: int = 16,
                     chunk_tokens: int | None = None, logits: str = "all") -> Graph:
    """The GPT-2 graph of `phase` for an HF GPT-2 config dict; `source` names it in errors."""
    shape = GPT2Shape.from_config(config, source)
    if phase not in PHASES:
        hint = " (GPT-2 is a decoder; encoder is for the BERT family)" if phase == "encoder" else ""
        raise UserError(f"--phase: GPT-2 phases are {', '.join(PHASES)}, got {phase!r}{hint}")
    if logits not in LOGITS_CHOICES:
        raise UserError(f"logits: expected one of {', '.join(LOGITS_CHOICES)}, got {logits!r}")
    check_run_shape(batch, seq, chunk_tokens, new_tokens)
    positions = seq + new_tokens if phase == "decode" else seq
    if positions > shape.n_positions:
        raise UserError(f"{source}: {phase} needs {positions} positions but n_positions is "
                        f"{shape.n_positions}; lower --seq or --new-tokens")
    emitter = _GPT2Emitter(shape, batch)
    for group in _token_groups(phase, seq, new_tokens, chunk_tokens, logits):
        emitter.group(group)
    return Graph(model=model, phase=phase, batch=batch,
                 tokens=batch * (new_tokens if phase == "decode" else seq),
                 ops=tuple(emitter.ops.ops), projections=emitter.projections,
                 meta={"family": "gpt2", "config": dict(config), "seq": seq,
                       "new_tokens": new_tokens, "chunk_tokens": chunk_tokens, "logits": logits})
