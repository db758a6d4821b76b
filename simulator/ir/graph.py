"""The workload graph: what a transformer asks the hardware to do, with no hardware in it.

A `Graph` is a topologically ordered tuple of `Op`s. Each op knows its work (MACs,
elementwise elements) and its traffic (bytes in/out, counted in elements times the
element size the lowering chooses). `Linear` ops carry the projection name of the
checkpoint module (`transformer.h.0.attn.c_attn`), which is the key of a mapping.
Graph builders (workloads.gpt2.graph, workloads.bert.graph) emit one op per token
chunk so that later layers can start on early chunks (pipelining) while the task
count stays bounded.
"""
from __future__ import annotations

from dataclasses import dataclass, field


class OpKind:
    """Op kinds. Only LINEAR has static weights and may run on analog tiles."""

    LINEAR = "linear"  # tokens x in_features @ W^T (out_features x in_features)
    MATMUL = "matmul"  # activation x activation (QK^T, AV): digital only
    SOFTMAX = "softmax"
    LAYERNORM = "layernorm"
    NONORM = "nonorm"  # MobileBERT's elementwise affine replacement of LayerNorm
    GELU = "gelu"
    RELU = "relu"
    ADD = "add"  # residual add (elementwise)
    EMBEDDING = "embedding"  # table lookup from DRAM
    KV_WRITE = "kv_write"  # append K,V of new tokens to the cache (DRAM)
    KV_READ = "kv_read"  # read the cached K,V for attention (DRAM)

    ALL = (LINEAR, MATMUL, SOFTMAX, LAYERNORM, NONORM, GELU, RELU, ADD, EMBEDDING, KV_WRITE, KV_READ)


@dataclass(frozen=True)
class Op:
    id: int  # index in Graph.ops; deps point to smaller ids
    name: str  # unique, e.g. "transformer.h.0.attn.c_attn#c3" (chunk 3)
    kind: str  # one of OpKind
    deps: tuple[int, ...] = ()
    tokens: int = 0  # activation rows processed (batch x chunk tokens)
    projection: str = ""  # LINEAR only: checkpoint module name = mapping key
    in_features: int = 0  # LINEAR
    out_features: int = 0  # LINEAR
    has_bias: bool = False  # LINEAR
    macs: int = 0  # LINEAR / MATMUL multiply-accumulates
    elements: int = 0  # elementwise work (softmax/norm/activation/add elements)
    elements_in: int = 0  # activation elements read
    elements_out: int = 0  # activation elements written
    dram_elements: int = 0  # EMBEDDING / KV_READ / KV_WRITE elements moved to or from DRAM
    heads: int = 0  # attention and KV ops: independent heads (batch x n_head), split over cores
    layer: int = -1  # transformer block index, -1 outside blocks
    chunk: int = 0  # token chunk index (prefill/encoder) or decode step


@dataclass(frozen=True)
class Projection:
    """A static-weight Linear of the model: the unit of analog/digital mapping."""

    name: str  # checkpoint module name, e.g. "transformer.h.3.mlp.c_fc"
    in_features: int
    out_features: int
    has_bias: bool = True
    layer: int = -1

    @property
    def weights(self) -> int:
        return self.in_features * self.out_features


@dataclass(frozen=True)
class Graph:
    model: str  # e.g. "gpt2", "mobilebert"
    phase: str  # encoder | prefill | decode
    batch: int
    tokens: int  # tokens processed in this phase (for tokens/s): B*S, B*P or B*N
    ops: tuple[Op, ...]
    projections: tuple[Projection, ...]  # in model order, each once
    meta: dict = field(default_factory=dict)  # builder parameters (seq, chunk_tokens, ...)

    def projection(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def total_macs(self) -> int:
        return sum(op.macs for op in self.ops)
