"""A compact GPT-2 forward whose projections are `nn.Linear` modules at their HF names.

Every projection (`transformer.h.{i}.attn.c_attn`, `.attn.c_proj`, `.mlp.c_fc`,
`.mlp.c_proj`, `lm_head`) is a plain `nn.Linear` at the module path equal to its
projection name, so the analog layer can replace any of them by name. HF GPT-2
stores those weights as Conv1D (in x out); `load_hf_state_dict` transposes them and
`to_hf_state_dict` transposes back, so checkpoints stay loadable by `transformers`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simulator.errors import UserError

# HF names of the Linear projections stored in Conv1D (in x out) layout.
CONV1D_SUFFIXES = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
# Non-parameter buffers some HF checkpoints carry (causal masks); recomputed here.
_IGNORED_HF_SUFFIXES = (".attn.bias", ".attn.masked_bias")


_REQUIRED_HF_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head")
_OPTIONAL_HF_KEYS = ("n_inner", "layer_norm_epsilon", "activation_function")


@dataclass(frozen=True)
class GPT2Config:
    """The HF `config.json` keys this forward needs (names as HF spells them)."""

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # None: 4 * n_embd, as in HF
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_new"

    @property
    def inner_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @classmethod
    def from_hf_dict(cls, config: dict, source: str = "config.json") -> "GPT2Config":
        """Read the fields from an HF config dict; other HF keys are ignored."""
        missing = [key for key in _REQUIRED_HF_KEYS if key not in config]
        if missing:
            raise UserError(f"{source}: missing key {missing[0]!r} (a GPT-2 config needs "
                            f"{', '.join(_REQUIRED_HF_KEYS)})")
        parsed = cls(**{key: config[key] for key in _REQUIRED_HF_KEYS + _OPTIONAL_HF_KEYS
                        if key in config})
        parsed._validate(source)
        return parsed

    def _validate(self, source: str) -> None:
        for name in _REQUIRED_HF_KEYS:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise UserError(f"{source}: {name}: expected a positive integer, got {value!r}")
        if self.n_embd % self.n_head:
            raise UserError(f"{source}: n_embd ({self.n_embd}) must be divisible by "
                            f"n_head ({self.n_head})")
        if self.activation_function not in ACTIVATIONS:
            raise UserError(f"{source}: activation_function: expected one of "
                            f"{sorted(ACTIVATIONS)}, got {self.activation_function!r}")

    def to_hf_dict(self) -> dict:
        """The HF `config.json` content, so `transformers.GPT2LMHeadModel` can load it too."""
        return {
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": self.vocab_size, "n_positions": self.n_positions,
            "n_ctx": self.n_positions, "n_embd": self.n_embd, "n_layer": self.n_layer,
            "n_head": self.n_head, "n_inner": self.n_inner,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "activation_function": self.activation_function,
            "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "tie_word_embeddings": True,
        }


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's tanh approximation of GELU."""
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {"gelu_new": gelu_new, "gelu_pytorch_tanh": gelu_new, "gelu": F.gelu,
               "relu": F.relu}


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        head_dim = width // self.n_head
        q, k, v = self.c_attn(x).split(width, dim=2)
        q, k, v = (t.view(batch, seq, self.n_head, head_dim).transpose(1, 2) for t in (q, k, v))
        context = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(context.transpose(1, 2).reshape(batch, seq, width))


class MLP(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.inner_dim)
        self.c_proj = nn.Linear(config.inner_dim, config.n_embd)
        self.activation = ACTIVATIONS[config.activation_function]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.activation(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)


class GPT2(nn.Module):
    """GPT-2 language model: token ids (batch, seq) -> logits (batch, seq, vocab)."""

    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        self.transformer = Transformer(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied, as in GPT-2
        self.apply(_init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2's scaled init of residual projections
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        seq = input_ids.shape[1]
        if seq > self.config.n_positions:
            raise ValueError(f"sequence of {seq} tokens exceeds n_positions={self.config.n_positions}")
        positions = torch.arange(seq, device=input_ids.device)
        x = self.transformer.wte(input_ids) + self.transformer.wpe(positions)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))

    def projection_names(self) -> list[str]:
        """The Linear projections in graph order: 4 per block, then lm_head."""
        names = [f"transformer.h.{i}.{suffix}" for i in range(self.config.n_layer)
                 for suffix in CONV1D_SUFFIXES]
        return names + ["lm_head"]


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, 0.0, 0.02)


def from_hf_config(config: dict, source: str = "config.json") -> GPT2:
    """A randomly initialised GPT2 shaped by an HF GPT-2 `config.json` dict."""
    return GPT2(GPT2Config.from_hf_dict(config, source))


def _is_conv1d_weight(key: str) -> bool:
    return key.endswith(".weight") and key[: -len(".weight")].endswith(CONV1D_SUFFIXES)


def load_hf_state_dict(model: GPT2, state_dict: dict[str, torch.Tensor],
                       source: str = "model.safetensors") -> GPT2:
    """Copy an HF GPT-2 state dict (GPT2LMHeadModel or bare GPT2Model keys) into `model`.

    Conv1D weights are transposed to Linear layout; `lm_head.weight`, when present, must
    equal the tied embedding. Missing or mis-shaped tensors raise UserError naming the key.
    """
    expected = model.state_dict()
    loaded = {}
    for key, tensor in state_dict.items():
        if key.endswith(_IGNORED_HF_SUFFIXES) or key == "lm_head.weight":
            continue
        name = key if key.startswith("transformer.") else f"transformer.{key}"
        if name not in expected:
            raise UserError(f"{source}: unexpected tensor {key!r} for a GPT-2 model")
        value = tensor.t() if _is_conv1d_weight(name) else tensor
        if tuple(value.shape) != tuple(expected[name].shape):
            raise UserError(f"{source}: {key}: shape {tuple(tensor.shape)} does not match "
                            f"config.json (expected {_hf_shape(name, expected[name])})")
        loaded[name] = value.to(expected[name].dtype)
    missing = sorted(set(expected) - set(loaded) - {"lm_head.weight"})
    if missing:
        raise UserError(f"{source}: missing {len(missing)} tensor(s), first {missing[0]!r}")
    head = state_dict.get("lm_head.weight")
    if head is not None and not torch.equal(head.to(loaded["transformer.wte.weight"].dtype),
                                            loaded["transformer.wte.weight"]):
        raise UserError(f"{source}: lm_head.weight differs from transformer.wte.weight; "
                        "only tied GPT-2 heads are supported")
    model.load_state_dict(loaded, strict=False)
    return model


def _hf_shape(name: str, tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.t().shape) if _is_conv1d_weight(name) else tuple(tensor.shape)


def to_hf_state_dict(model: GPT2) -> dict[str, torch.Tensor]:
    """The HF GPT2LMHeadModel layout (Conv1D weights in x out), without the tied head."""
    return {name: (tensor.t() if _is_conv1d_weight(name) else tensor).contiguous()
            for name, tensor in model.state_dict().items() if name != "lm_head.weight"}
