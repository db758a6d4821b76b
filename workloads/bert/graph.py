"""BERT and MobileBERT encoders as workload graphs (timing side, no weights).

One builder covers both: plain BERT is MobileBERT without bottlenecks, with a single
FFN, LayerNorm and no embedding transformation, and HF gives both the same module
names for what they share. Projection names are the module names of HF `BertModel` /
`MobileBertModel` without prefix; the pooler is left out (it belongs to task heads).
Projections are listed in execution order (a MobileBERT layer runs its bottlenecks
before attention), which is the order tiles and programming rounds are handed out in.

Attention is bidirectional: QK^T of each chunk waits for the keys of every chunk, so
ops are emitted per layer in two stages (all chunks' Q/K/V, then all chunks' rest).
The sequences of a batch are independent: each has its own ops (attention over its own
keys only), emitted sequence after sequence (`meta["sequence_op_start"]`: the first op
id of each), so weight-stationary hardware can pipeline sequence b+1 behind sequence b
and lower ids (earlier sequences) win ties, as in IBM's fully weight-stationary BERT
runs (Burr et al., IEDM 2023 Fig. 6 / CICC 2025 Fig. 5).
MobileBERT data flow per layer (HF `MobileBertLayer`): bottleneck.input (hidden ->
128) and the shared key/query bottleneck.attention; query/key on the shared bottleneck,
value on the layer input; attention.output + residual(bottleneck) + norm; three
stacked ffn.{k} blocks and the final intermediate/output, each with residual + norm;
output.bottleneck (128 -> hidden) + residual(layer input) + norm.
"""
from __future__ import annotations

from dataclasses import dataclass

from simulator.errors import UserError
from simulator.ir.graph import Graph, OpKind, Projection
from workloads.graph_builder import OpList, check_run_shape, chunk_spans, config_int

PHASES = ("encoder",)
NORM_KINDS = {"no_norm": OpKind.NONORM, "layer_norm": OpKind.LAYERNORM}
ACTIVATION_KINDS = {"relu": OpKind.RELU, "gelu": OpKind.GELU, "gelu_new": OpKind.GELU,
                    "gelu_python": OpKind.GELU, "gelu_pytorch_tanh": OpKind.GELU}


@dataclass(frozen=True)
class EncoderShape:
    """Sizes and structure switches of a BERT-family encoder."""

    n_layer: int
    hidden: int  # width between layers
    true_hidden: int  # width inside a layer (MobileBERT bottleneck; = hidden for BERT)
    n_head: int
    intermediate: int
    feedforward_networks: int  # FFN blocks per layer, the final intermediate/output included
    embedding_size: int  # word-embedding width
    trigram_input: bool  # MobileBERT: concatenate the neighbours' embeddings (3 x width)
    use_bottleneck: bool
    bottleneck_attention: bool  # Q, K and V all from bottleneck.input
    key_query_shared_bottleneck: bool  # Q and K from bottleneck.attention
    norm_kind: str
    activation_kind: str
    max_positions: int

    @classmethod
    def from_bert_config(cls, config: dict, source: str) -> "EncoderShape":
        hidden = config_int(config, "hidden_size", source)
        return cls(n_layer=config_int(config, "num_hidden_layers", source), hidden=hidden,
                   true_hidden=hidden, n_head=config_int(config, "num_attention_heads", source),
                   intermediate=config_int(config, "intermediate_size", source),
                   feedforward_networks=1, embedding_size=hidden, trigram_input=False,
                   use_bottleneck=False, bottleneck_attention=False,
                   key_query_shared_bottleneck=False, norm_kind=OpKind.LAYERNORM,
                   activation_kind=_choice(config, "hidden_act", ACTIVATION_KINDS, "gelu", source),
                   max_positions=config_int(config, "max_position_embeddings", source))._checked(source)

    @classmethod
    def from_mobilebert_config(cls, config: dict, source: str) -> "EncoderShape":
        hidden = config_int(config, "hidden_size", source)
        use_bottleneck = bool(config.get("use_bottleneck", True))
        true_hidden = config_int(config, "intra_bottleneck_size", source) if use_bottleneck else hidden
        return cls(n_layer=config_int(config, "num_hidden_layers", source), hidden=hidden,
                   true_hidden=true_hidden, n_head=config_int(config, "num_attention_heads", source),
                   intermediate=config_int(config, "intermediate_size", source),
                   feedforward_networks=config_int(config, "num_feedforward_networks", source),
                   embedding_size=config_int(config, "embedding_size", source),
                   trigram_input=bool(config.get("trigram_input", True)),
                   use_bottleneck=use_bottleneck,
                   bottleneck_attention=use_bottleneck and bool(config.get("use_bottleneck_attention")),
                   key_query_shared_bottleneck=use_bottleneck and bool(
                       config.get("key_query_shared_bottleneck", True)),
                   norm_kind=_choice(config, "normalization_type", NORM_KINDS, "no_norm", source),
                   activation_kind=_choice(config, "hidden_act", ACTIVATION_KINDS, "relu", source),
                   max_positions=config_int(config, "max_position_embeddings", source))._checked(source)

    def _checked(self, source: str) -> "EncoderShape":
        if self.true_hidden % self.n_head:
            raise UserError(f"{source}: attention width {self.true_hidden} must be divisible by "
                            f"num_attention_heads ({self.n_head})")
        if self.use_bottleneck and not (self.bottleneck_attention or self.key_query_shared_bottleneck):
            raise UserError(f"{source}: use_bottleneck needs use_bottleneck_attention or "
                            "key_query_shared_bottleneck (queries must be bottleneck-wide)")
        return self

    @property
    def embedding_transformed(self) -> bool:
        """MobileBERT maps (trigram) word embeddings to the hidden width with a Linear."""
        return self.trigram_input or self.embedding_size != self.hidden

    @property
    def embedded_input_size(self) -> int:
        return self.embedding_size * (3 if self.trigram_input else 1)


def _choice(config: dict, key: str, choices: dict, default: str, source: str) -> str:
    value = config.get(key, default)
    if value not in choices:
        raise UserError(f"{source}: {key}: expected one of {', '.join(choices)}, got {value!r}")
    return choices[value]


def encoder_projections(shape: EncoderShape) -> tuple[Projection, ...]:
    """Static-weight Linears in execution order, named as in HF (no pooler)."""
    s = shape
    projections = []
    if s.embedding_transformed:
        projections.append(Projection("embeddings.embedding_transformation",
                                      s.embedded_input_size, s.hidden))
    for layer in range(s.n_layer):
        def add(suffix, in_features, out_features):
            projections.append(Projection(f"encoder.layer.{layer}.{suffix}", in_features,
                                          out_features, layer=layer))
        if s.use_bottleneck:
            add("bottleneck.input.dense", s.hidden, s.true_hidden)
            if s.key_query_shared_bottleneck and not s.bottleneck_attention:
                add("bottleneck.attention.dense", s.hidden, s.true_hidden)
        add("attention.self.query", s.true_hidden, s.true_hidden)
        add("attention.self.key", s.true_hidden, s.true_hidden)
        add("attention.self.value", s.true_hidden if s.bottleneck_attention else s.hidden,
            s.true_hidden)
        add("attention.output.dense", s.true_hidden, s.true_hidden)
        for ffn in range(s.feedforward_networks - 1):
            add(f"ffn.{ffn}.intermediate.dense", s.true_hidden, s.intermediate)
            add(f"ffn.{ffn}.output.dense", s.intermediate, s.true_hidden)
        add("intermediate.dense", s.true_hidden, s.intermediate)
        add("output.dense", s.intermediate, s.true_hidden)
        if s.use_bottleneck:
            add("output.bottleneck.dense", s.true_hidden, s.hidden)
    return tuple(projections)


class _EncoderEmitter:
    """Emits one sequence's ops chunk by chunk within each stage.

    `tag` prefixes the chunk tag of every op name: "" for a single sequence, "s3." for
    sequence 3 of a batch (names stay unique, ops of one sequence are recognisable).
    """

    def __init__(self, shape: EncoderShape, spans: list[tuple[int, int]], ops: OpList,
                 projections: tuple[Projection, ...], tag: str = ""):
        self.shape = shape
        self.spans = spans
        self.seq = spans[-1][1]
        self.ops = ops
        self.tag = tag
        self.projections = projections
        self._proj = {p.name: p for p in projections}

    def rows(self, chunk: int) -> int:
        start, stop = self.spans[chunk]
        return stop - start

    def linear(self, name: str, chunk: int, deps) -> int:
        return self.ops.linear(self._proj[name], f"{self.tag}c{chunk}", self.rows(chunk), deps, chunk)

    def norm(self, name: str, chunk: int, width: int, deps, layer: int) -> int:
        return self.ops.elementwise(f"{name}#{self.tag}c{chunk}", self.shape.norm_kind, self.rows(chunk),
                                    width, deps, layer=layer, chunk=chunk)

    def residual_norm(self, prefix: str, chunk: int, width: int, value: int, residual: int,
                      layer: int) -> int:
        """`prefix`.LayerNorm(value + residual), as every HF output block does."""
        added = self.ops.elementwise(f"{prefix}.residual#{self.tag}c{chunk}", OpKind.ADD, self.rows(chunk),
                                     width, (value, residual), layer=layer, chunk=chunk, operands=2)
        return self.norm(f"{prefix}.LayerNorm", chunk, width, (added,), layer)

    def embeddings(self, chunk: int) -> int:
        s, rows = self.shape, self.rows(chunk)
        if not s.embedding_transformed:
            summed = self.ops.embedding(f"embeddings.word+position+token_type#{self.tag}c{chunk}", rows,
                                        3 * s.hidden, s.hidden, 2, (), chunk)
        else:
            words = self.ops.embedding(f"embeddings.word_embeddings#{self.tag}c{chunk}", rows,
                                       s.embedding_size, s.embedded_input_size, 0, (), chunk)
            transformed = self.linear("embeddings.embedding_transformation", chunk, (words,))
            summed = self.ops.embedding(f"embeddings.position+token_type#{self.tag}c{chunk}", rows,
                                        2 * s.hidden, s.hidden, 2, (transformed,), chunk)
        return self.norm("embeddings.LayerNorm", chunk, s.hidden, (summed,), -1)

    def layer(self, layer: int, x: list[int]) -> list[int]:
        s, p = self.shape, f"encoder.layer.{layer}"
        chunks = range(len(self.spans))
        attention_inputs = [self._attention_inputs(layer, c, x[c]) for c in chunks]
        q = [self.linear(f"{p}.attention.self.query", c, (attention_inputs[c][0],)) for c in chunks]
        k = [self.linear(f"{p}.attention.self.key", c, (attention_inputs[c][0],)) for c in chunks]
        v = [self.linear(f"{p}.attention.self.value", c, (attention_inputs[c][1],)) for c in chunks]
        out = []
        for c in chunks:
            queries = self.spans[c][1] - self.spans[c][0]
            av = self.ops.attention(f"{p}.attention.self", f"{self.tag}c{c}", batch=1,
                                    queries=queries, key_pairs=queries * self.seq, keys=self.seq,
                                    n_head=s.n_head, head_dim=s.true_hidden // s.n_head,
                                    qk_deps=(q[c], *k), av_deps=v, layer=layer, chunk=c)
            h = self.residual_norm(f"{p}.attention.output", c, s.true_hidden,
                                   self.linear(f"{p}.attention.output.dense", c, (av,)),
                                   attention_inputs[c][2], layer)
            for ffn in range(s.feedforward_networks - 1):
                h = self._feedforward(f"{p}.ffn.{ffn}", c, h, layer)
            h = self._feedforward(p, c, h, layer)
            if s.use_bottleneck:
                h = self.residual_norm(f"{p}.output.bottleneck", c, s.hidden,
                                       self.linear(f"{p}.output.bottleneck.dense", c, (h,)),
                                       x[c], layer)
            out.append(h)
        return out

    def _attention_inputs(self, layer: int, chunk: int, x: int) -> tuple[int, int, int]:
        """Op ids feeding (query/key, value, attention residual) for one chunk."""
        s, p = self.shape, f"encoder.layer.{layer}.bottleneck"
        if not s.use_bottleneck:
            return x, x, x
        layer_input = self.norm(f"{p}.input.LayerNorm", chunk, s.true_hidden,
                                (self.linear(f"{p}.input.dense", chunk, (x,)),), layer)
        if s.bottleneck_attention:
            return layer_input, layer_input, layer_input
        shared = self.norm(f"{p}.attention.LayerNorm", chunk, s.true_hidden,
                           (self.linear(f"{p}.attention.dense", chunk, (x,)),), layer)
        return shared, x, layer_input

    def _feedforward(self, prefix: str, chunk: int, h: int, layer: int) -> int:
        """intermediate.dense -> activation -> output.dense -> residual(h) + norm."""
        s = self.shape
        up = self.linear(f"{prefix}.intermediate.dense", chunk, (h,))
        act = self.ops.elementwise(f"{prefix}.intermediate.act#{self.tag}c{chunk}", s.activation_kind,
                                   self.rows(chunk), s.intermediate, (up,), layer=layer, chunk=chunk)
        return self.residual_norm(f"{prefix}.output", chunk, s.true_hidden,
                                  self.linear(f"{prefix}.output.dense", chunk, (act,)), h, layer)


def build_encoder_graph(shape: EncoderShape, phase: str, *, model: str, family: str, config: dict,
                        batch: int = 1, seq: int = 128, chunk_tokens: int | None = None,
                        source: str = "") -> Graph:
    """The encoder pass over `seq` tokens of `batch` sequences."""
    if phase not in PHASES:
        raise UserError(f"--phase: {family} is an encoder, its only phase is 'encoder' "
                        f"(got {phase!r}; prefill/decode are for GPT-2)")
    check_run_shape(batch, seq, chunk_tokens)
    if seq > shape.max_positions:
        raise UserError(f"{source or model}: --seq {seq} exceeds max_position_embeddings "
                        f"({shape.max_positions})")
    ops, projections, spans = OpList(), encoder_projections(shape), chunk_spans(seq, chunk_tokens)
    sequence_start = []
    for sequence in range(batch):
        sequence_start.append(len(ops.ops))
        emitter = _EncoderEmitter(shape, spans, ops, projections, f"s{sequence}." if batch > 1 else "")
        x = [emitter.embeddings(c) for c in range(len(spans))]
        for layer in range(shape.n_layer):
            x = emitter.layer(layer, x)
    return Graph(model=model, phase=phase, batch=batch, tokens=batch * seq,
                 ops=tuple(ops.ops), projections=projections,
                 meta={"family": family, "config": dict(config), "seq": seq, "new_tokens": 0,
                       "chunk_tokens": chunk_tokens, "sequence_op_start": tuple(sequence_start)})


def build_bert_graph(config: dict, phase: str, *, model: str = "bert-base", source: str = "",
                     **run) -> Graph:
    """Plain BERT (HF `BertModel`, e.g. bert-base or MiniLM checkpoints)."""
    return build_encoder_graph(EncoderShape.from_bert_config(config, source or model), phase,
                               model=model, family="bert", config=config, source=source, **run)


def build_mobilebert_graph(config: dict, phase: str, *, model: str = "mobilebert",
                           source: str = "", **run) -> Graph:
    """MobileBERT (HF `MobileBertModel`)."""
    return build_encoder_graph(EncoderShape.from_mobilebert_config(config, source or model),
                               phase, model=model, family="mobilebert", config=config,
                               source=source, **run)
