"""Compact BERT and MobileBERT encoders whose projections are `nn.Linear` at their HF names.

Every projection sits at the module path HF `BertModel` / `MobileBertModel` gives it,
without the `bert.` / `mobilebert.` prefix (`encoder.layer.0.attention.self.query`,
`encoder.layer.0.ffn.0.intermediate.dense`, `embeddings.embedding_transformation`), so
the analog layer can replace any of them by name and HF state dicts load unchanged.

Both models return the last hidden state; there is no task head and no pooler (the
pooler is a task-head input, not part of the encoder workload the simulator maps).
Sentence embeddings come from `sentence_embedding` (masked mean, L2-normalised).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simulator.errors import UserError

def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU (HF `gelu_new`); a named function so models pickle."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}
NORMALIZATION_TYPES = ("layer_norm", "no_norm")


@dataclass(frozen=True)
class BertConfig:
    """The HF BERT `config.json` keys this forward needs (names as HF spells them)."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02

    @classmethod
    def from_hf_dict(cls, config: dict, source: str = "config.json"):
        """Read the fields from an HF config dict; unknown HF keys are ignored."""
        embedding_type = config.get("position_embedding_type", "absolute")
        if embedding_type != "absolute":
            raise UserError(f"{source}: position_embedding_type: only 'absolute' is supported, "
                            f"got {embedding_type!r}")
        parsed = _fields_from_hf_dict(cls, config, source)
        parsed._validate(source)
        return parsed

    @property
    def attention_width(self) -> int:
        """Width of the attention block (queries, keys, values, attention output)."""
        return self.hidden_size

    def _validate(self, source: str) -> None:
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{source}: {name}: expected a positive integer, got {value!r}")
        if self.attention_width % self.num_attention_heads:
            raise UserError(f"{source}: attention width {self.attention_width} must be divisible "
                            f"by num_attention_heads ({self.num_attention_heads})")
        if not isinstance(self.hidden_act, str) or self.hidden_act not in ACTIVATIONS:
            raise UserError(f"{source}: hidden_act: expected one of {sorted(ACTIVATIONS)}, "
                            f"got {self.hidden_act!r}")


@dataclass(frozen=True)
class MobileBertConfig(BertConfig):
    """HF MobileBERT `config.json` keys; defaults are those of google/mobilebert-uncased."""

    hidden_act: str = "relu"
    embedding_size: int = 128
    trigram_input: bool = True
    use_bottleneck: bool = True
    intra_bottleneck_size: int = 128
    use_bottleneck_attention: bool = False
    key_query_shared_bottleneck: bool = True
    num_feedforward_networks: int = 4
    normalization_type: str = "no_norm"

    @property
    def attention_width(self) -> int:
        """HF's `true_hidden_size`: the bottleneck width when bottlenecks are on."""
        return self.intra_bottleneck_size if self.use_bottleneck else self.hidden_size

    def _validate(self, source: str) -> None:
        super()._validate(source)
        for name in ("embedding_size", "intra_bottleneck_size", "num_feedforward_networks"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{source}: {name}: expected a positive integer, got {value!r}")
        for name in ("trigram_input", "use_bottleneck", "use_bottleneck_attention",
                     "key_query_shared_bottleneck"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"{source}: {name}: expected true or false, "
                                f"got {getattr(self, name)!r}")
        if self.normalization_type not in NORMALIZATION_TYPES:
            raise UserError(f"{source}: normalization_type: expected one of "
                            f"{list(NORMALIZATION_TYPES)}, got {self.normalization_type!r}")
        narrow_queries = self.use_bottleneck_attention or self.key_query_shared_bottleneck
        if self.use_bottleneck and not narrow_queries and self.hidden_size != self.attention_width:
            raise UserError(f"{source}: use_bottleneck without use_bottleneck_attention or "
                            "key_query_shared_bottleneck needs intra_bottleneck_size == hidden_size")


def _fields_from_hf_dict(cls, config: dict, source: str):
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING]
    missing = [name for name in required if name not in config]
    if missing:
        raise UserError(f"{source}: missing key {missing[0]!r} (a {cls.__name__} needs "
                        f"{', '.join(required)})")
    values = {f.name: config[f.name] for f in dataclasses.fields(cls)
              if f.name in config and config[f.name] is not None}
    return cls(**values)


class NoNorm(nn.Module):
    """MobileBERT's replacement for LayerNorm: an elementwise affine map, no statistics."""

    def __init__(self, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def make_norm(normalization_type: str, size: int, eps: float) -> nn.Module:
    return nn.LayerNorm(size, eps=eps) if normalization_type == "layer_norm" else NoNorm(size)


class SelfAttention(nn.Module):
    """Multi-head attention; queries/keys/values may come from different tensors (MobileBERT)."""

    def __init__(self, query_key_in: int, value_in: int, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(query_key_in, width)
        self.key = nn.Linear(query_key_in, width)
        self.value = nn.Linear(value_in, width)

    def forward(self, query_in, key_in, value_in, keep_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq, _ = query_in.shape
        q, k, v = (projection(x).view(batch, seq, self.heads, -1).transpose(1, 2)
                   for projection, x in ((self.query, query_in), (self.key, key_in),
                                         (self.value, value_in)))
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep_mask)
        return context.transpose(1, 2).reshape(batch, seq, -1)


class DenseResidualNorm(nn.Module):
    """`norm(dense(x) + residual)`: every BERT sub-block output has this shape."""

    def __init__(self, in_features: int, out_features: int, norm: nn.Module):
        super().__init__()
        self.dense = nn.Linear(in_features, out_features)
        self.LayerNorm = norm

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Intermediate(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden_act: str):
        super().__init__()
        self.dense = nn.Linear(in_features, out_features)
        self.activation = ACTIVATIONS[hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(x))


class _Encoder(nn.Module):
    """Shared plumbing: masks, the layer loop, initialisation, projection names."""

    config: BertConfig

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Token ids (batch, seq) -> last hidden state (batch, seq, hidden_size).

        `attention_mask` (batch, seq) is 1 for real tokens and 0 for padding; padded keys
        are never attended to. `token_type_ids` default to segment 0.
        """
        seq = input_ids.shape[1]
        if seq > self.config.max_position_embeddings:
            raise ValueError(f"sequence of {seq} tokens exceeds max_position_embeddings="
                             f"{self.config.max_position_embeddings}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        keep_mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        hidden = self.embeddings(input_ids, token_type_ids)
        for layer in self.encoder.layer:
            hidden = layer(hidden, keep_mask)
        return hidden

    def projection_names(self) -> list[str]:
        """The Linear projections in execution order, named as in the HF checkpoint."""
        return [name for name, module in self.named_modules() if isinstance(module, nn.Linear)]

    def _init_weights(self, seed: int) -> None:
        """BERT's init (normal(0, initializer_range), zero biases), seeded for repeatability."""
        generator = torch.Generator().manual_seed(seed)
        std = self.config.initializer_range
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    nn.init.normal_(module.weight, 0.0, std, generator=generator)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
                if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()


def _word_embeddings(config: BertConfig, width: int) -> nn.Embedding:
    pad = config.pad_token_id if 0 <= config.pad_token_id < config.vocab_size else None
    return nn.Embedding(config.vocab_size, width, padding_idx=pad)


class BertEmbeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = _word_embeddings(config, config.hidden_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.LayerNorm(self.word_embeddings(input_ids) + self.position_embeddings(positions)
                              + self.token_type_embeddings(token_type_ids))


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.self = SelfAttention(width, width, width, config.num_attention_heads)
        self.output = DenseResidualNorm(width, width, nn.LayerNorm(width, eps=config.layer_norm_eps))

    def forward(self, x: torch.Tensor, keep_mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, x, x, keep_mask), x)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        width = config.hidden_size
        self.attention = BertAttention(config)
        self.intermediate = Intermediate(width, config.intermediate_size, config.hidden_act)
        self.output = DenseResidualNorm(config.intermediate_size, width,
                                        nn.LayerNorm(width, eps=config.layer_norm_eps))

    def forward(self, x: torch.Tensor, keep_mask: torch.Tensor | None) -> torch.Tensor:
        attended = self.attention(x, keep_mask)
        return self.output(self.intermediate(attended), attended)


class _Layers(nn.Module):
    """Holds `layer` so parameter paths read `encoder.layer.{i}...` as in HF."""

    def __init__(self, layers: list[nn.Module]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class BertEncoder(_Encoder):
    """BERT (and MiniLM) encoder: post-LayerNorm blocks, GELU, absolute positions."""

    def __init__(self, config: BertConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = _Layers([BertLayer(config) for _ in range(config.num_hidden_layers)])
        self._init_weights(seed)


class MobileBertEmbeddings(nn.Module):
    """Narrow token embeddings, optionally as trigrams (next, self, previous), widened by a Linear."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.trigram_input = config.trigram_input
        self.transform_needed = config.trigram_input or config.embedding_size != config.hidden_size
        self.word_embeddings = _word_embeddings(config, config.embedding_size)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        input_width = config.embedding_size * (3 if config.trigram_input else 1)
        self.embedding_transformation = nn.Linear(input_width, config.hidden_size)
        # HF builds this norm without layer_norm_eps, so a LayerNorm here has eps 1e-5.
        self.LayerNorm = make_norm(config.normalization_type, config.hidden_size, eps=1e-5)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        tokens = self.word_embeddings(input_ids)
        if self.trigram_input:
            following = F.pad(tokens[:, 1:], (0, 0, 0, 1))
            preceding = F.pad(tokens[:, :-1], (0, 0, 1, 0))
            tokens = torch.cat([following, tokens, preceding], dim=2)
        if self.transform_needed:
            tokens = self.embedding_transformation(tokens)
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.LayerNorm(tokens + self.position_embeddings(positions)
                              + self.token_type_embeddings(token_type_ids))


class BottleneckLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intra_bottleneck_size)
        self.LayerNorm = make_norm(config.normalization_type, config.intra_bottleneck_size,
                                   config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x))


class Bottleneck(nn.Module):
    """Projects the wide hidden state down to the attention width.

    Returns (query input, key input, value input, residual for the attention output):
    with `use_bottleneck_attention` all four are the `input` bottleneck; otherwise
    queries and keys use the shared `attention` bottleneck (if any) and values the wide state.
    """

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck_attention = config.use_bottleneck_attention
        self.key_query_shared_bottleneck = config.key_query_shared_bottleneck
        self.input = BottleneckLayer(config)
        if config.key_query_shared_bottleneck:
            self.attention = BottleneckLayer(config)

    def forward(self, x: torch.Tensor):
        narrow = self.input(x)
        if self.use_bottleneck_attention:
            return narrow, narrow, narrow, narrow
        if self.key_query_shared_bottleneck:
            shared = self.attention(x)
            return shared, shared, x, narrow
        return x, x, x, narrow


class MobileBertAttention(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.attention_width
        value_in = width if config.use_bottleneck_attention else config.hidden_size
        self.self = SelfAttention(width, value_in, width, config.num_attention_heads)
        self.output = DenseResidualNorm(width, width, make_norm(
            config.normalization_type, width, config.layer_norm_eps))

    def forward(self, query_in, key_in, value_in, residual, keep_mask) -> torch.Tensor:
        return self.output(self.self(query_in, key_in, value_in, keep_mask), residual)


class FFNLayer(nn.Module):
    """One of MobileBERT's stacked feed-forward networks at the bottleneck width."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.attention_width
        self.intermediate = Intermediate(width, config.intermediate_size, config.hidden_act)
        self.output = DenseResidualNorm(config.intermediate_size, width, make_norm(
            config.normalization_type, width, config.layer_norm_eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.intermediate(x), x)


class MobileBertOutput(nn.Module):
    """Last FFN output, then (with bottlenecks) the widening `bottleneck` back to hidden_size."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        width = config.attention_width
        self.dense = nn.Linear(config.intermediate_size, width)
        # HF builds this norm without layer_norm_eps, so a LayerNorm here has eps 1e-5.
        self.LayerNorm = make_norm(config.normalization_type, width, eps=1e-5)
        self.use_bottleneck = config.use_bottleneck
        if config.use_bottleneck:
            self.bottleneck = DenseResidualNorm(width, config.hidden_size, make_norm(
                config.normalization_type, config.hidden_size, config.layer_norm_eps))

    def forward(self, x, residual_narrow, residual_wide) -> torch.Tensor:
        narrow = self.LayerNorm(self.dense(x) + residual_narrow)
        return self.bottleneck(narrow, residual_wide) if self.use_bottleneck else narrow


class MobileBertLayer(nn.Module):
    def __init__(self, config: MobileBertConfig):
        super().__init__()
        self.use_bottleneck = config.use_bottleneck
        if config.use_bottleneck:
            self.bottleneck = Bottleneck(config)
        self.attention = MobileBertAttention(config)
        if config.num_feedforward_networks > 1:
            self.ffn = nn.ModuleList(FFNLayer(config)
                                     for _ in range(config.num_feedforward_networks - 1))
        self.intermediate = Intermediate(config.attention_width, config.intermediate_size,
                                         config.hidden_act)
        self.output = MobileBertOutput(config)

    def forward(self, x: torch.Tensor, keep_mask: torch.Tensor | None) -> torch.Tensor:
        if self.use_bottleneck:
            query_in, key_in, value_in, residual = self.bottleneck(x)
        else:
            query_in = key_in = value_in = residual = x
        hidden = self.attention(query_in, key_in, value_in, residual, keep_mask)
        for ffn in getattr(self, "ffn", ()):
            hidden = ffn(hidden)
        return self.output(self.intermediate(hidden), hidden, x)


class MobileBert(_Encoder):
    """MobileBERT encoder: trigram embeddings, bottlenecks, stacked FFNs, NoNorm, ReLU."""

    def __init__(self, config: MobileBertConfig, seed: int = 0):
        super().__init__()
        self.config = config
        self.embeddings = MobileBertEmbeddings(config)
        self.encoder = _Layers([MobileBertLayer(config) for _ in range(config.num_hidden_layers)])
        self._init_weights(seed)

    def projection_names(self) -> list[str]:
        """As the base class, minus `embedding_transformation` when the config bypasses it."""
        names = super().projection_names()
        if not self.embeddings.transform_needed:
            names.remove("embeddings.embedding_transformation")
        return names


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the hidden states of the real (mask 1) tokens: (batch, seq, d) -> (batch, d)."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


def sentence_embedding(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Sentence-transformers convention (all-MiniLM-L6-v2): masked mean, then unit L2 norm."""
    return F.normalize(mean_pool(hidden, attention_mask), p=2, dim=-1)


def bert_from_hf_config(config: dict, source: str = "config.json") -> BertEncoder:
    """A randomly initialised (seed 0) BertEncoder shaped by an HF BERT `config.json` dict."""
    return BertEncoder(BertConfig.from_hf_dict(config, source))


def mobilebert_from_hf_config(config: dict, source: str = "config.json") -> MobileBert:
    """A randomly initialised (seed 0) MobileBert shaped by an HF MobileBERT `config.json` dict."""
    return MobileBert(MobileBertConfig.from_hf_dict(config, source))
