"""What the GPT-2 and BERT-family graph builders share: op costs, chunking, argument checks.

Every cost is computed here from shapes alone, once, so an op's MACs, elementwise work
and traffic mean the same thing whichever model emitted it. Conventions (per op):
`tokens` = activation rows (batch x tokens in the chunk); `elements_in` / `elements_out`
= activation elements read / written; `elements` = elementwise work items;
`dram_elements` = elements moved to or from DRAM.
"""
from __future__ import annotations

from simulator.errors import UserError
from simulator.ir.graph import Op, OpKind, Projection


def config_int(config: dict, key: str, source: str) -> int:
    """A required positive integer from an HF config dict."""
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UserError(f"{source}: {key}: expected a positive integer, got {value!r}")
    return value


def check_run_shape(batch: int, seq: int, chunk_tokens: int | None,
                    new_tokens: int | None = None) -> None:
    """Reject non-positive sizes before any op is built (`new_tokens` only for decoders)."""
    sizes = (("batch", batch), ("seq", seq)) + (() if new_tokens is None else (("new_tokens", new_tokens),))
    for flag, value in sizes:
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise UserError(f"--{flag.replace('_', '-')}: expected a positive integer, got {value!r}")
    if chunk_tokens is not None and (not isinstance(chunk_tokens, int)
                                     or isinstance(chunk_tokens, bool) or chunk_tokens <= 0):
        raise UserError(f"--chunk-tokens: expected a positive integer or none, got {chunk_tokens!r}")


def chunk_spans(seq: int, chunk_tokens: int | None) -> list[tuple[int, int]]:
    """[start, stop) token positions of each chunk; the last chunk may be shorter."""
    step = seq if chunk_tokens is None else min(chunk_tokens, seq)
    return [(start, min(start + step, seq)) for start in range(0, seq, step)]


def causal_key_pairs(start: int, stop: int) -> int:
    """Query-key pairs of causal attention for queries at positions [start, stop).

    The query at position p attends to the p + 1 positions 0..p, so the chunk holds
    sum_{p=start}^{stop-1} (p + 1) pairs.
    """
    return (stop * (stop + 1) - start * (start + 1)) // 2


class OpList:
    """Appends ops with consecutive ids; each method returns the new op's id.

    Deps are de-duplicated and sorted; since they are ids already handed out, the
    list stays topologically ordered by construction.
    """

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def add(self, name: str, kind: str, deps=(), **costs) -> int:
        op_id = len(self.ops)
        self.ops.append(Op(id=op_id, name=name, kind=kind, deps=tuple(sorted(set(deps))), **costs))
        return op_id

    def linear(self, proj: Projection, tag: str, tokens: int, deps, chunk: int) -> int:
        return self.add(f"{proj.name}#{tag}", OpKind.LINEAR, deps, tokens=tokens,
                        projection=proj.name, in_features=proj.in_features,
                        out_features=proj.out_features, has_bias=proj.has_bias,
                        macs=tokens * proj.in_features * proj.out_features,
                        elements_in=tokens * proj.in_features,
                        elements_out=tokens * proj.out_features, layer=proj.layer, chunk=chunk)

    def elementwise(self, name: str, kind: str, tokens: int, width: int, deps, *, layer: int,
                    chunk: int, operands: int = 1) -> int:
        """A norm, activation or add over tokens x width elements with `operands` inputs."""
        return self.add(name, kind, deps, tokens=tokens, elements=tokens * width,
                        elements_in=operands * tokens * width, elements_out=tokens * width,
                        layer=layer, chunk=chunk)

    def embedding(self, name: str, tokens: int, row_elements: int, width: int, additions: int,
                  deps, chunk: int) -> int:
        """Gather `row_elements` per token from DRAM tables and sum them into `width` outputs."""
        return self.add(name, OpKind.EMBEDDING, deps, tokens=tokens,
                        dram_elements=tokens * row_elements, elements=tokens * width * additions,
                        elements_out=tokens * width, chunk=chunk)

    def cache_transfer(self, name: str, kind: str, tokens: int, dram_elements: int, deps, *,
                       heads: int, layer: int, chunk: int) -> int:
        """A KV-cache write or read between the attention (`heads` = batch x n_head) and DRAM."""
        on_chip = {"elements_in": dram_elements} if kind == OpKind.KV_WRITE else {
            "elements_out": dram_elements}
        return self.add(name, kind, deps, tokens=tokens, dram_elements=dram_elements, heads=heads,
                        layer=layer, chunk=chunk, **on_chip)

    def attention(self, prefix: str, tag: str, *, batch: int, queries: int, key_pairs: int,
                  keys: int, n_head: int, head_dim: int, qk_deps, av_deps=(), layer: int,
                  chunk: int) -> int:
        """QK^T, softmax and AV of `queries` query tokens per sequence; returns the AV op id.

        `key_pairs` counts query-key pairs per sequence (causal or full), `keys` the
        distinct key positions read per sequence. Scaling and masking are folded into
        the softmax; every head's MACs are counted (`n_head * head_dim` per pair).
        """
        width = n_head * head_dim
        scores = batch * n_head * key_pairs
        tokens = batch * queries
        heads = batch * n_head
        qk = self.add(f"{prefix}.qk#{tag}", OpKind.MATMUL, qk_deps, tokens=tokens, heads=heads,
                      macs=batch * key_pairs * width,
                      elements_in=tokens * width + batch * keys * width,
                      elements_out=scores, layer=layer, chunk=chunk)
        softmax = self.add(f"{prefix}.softmax#{tag}", OpKind.SOFTMAX, (qk,), tokens=tokens,
                           heads=heads, elements=scores, elements_in=scores, elements_out=scores,
                           layer=layer, chunk=chunk)
        return self.add(f"{prefix}.av#{tag}", OpKind.MATMUL, (softmax, *av_deps), tokens=tokens,
                        heads=heads, macs=batch * key_pairs * width,
                        elements_in=scores + batch * keys * width,
                        elements_out=tokens * width, layer=layer, chunk=chunk)
