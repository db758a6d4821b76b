"""Load a local Hugging Face checkpoint folder into our own torch forward, offline.

A folder holds `config.json` (its `model_type` picks the family: gpt2, bert, mobilebert),
weights (`model.safetensors`, a sharded `model.safetensors.index.json`, or
`pytorch_model.bin`) and optionally a tokenizer (`tokenizer.json`, or `vocab.txt` for
BERT WordPiece, or `vocab.json` + `merges.txt` for GPT-2 byte-level BPE). Nothing is
ever downloaded. Task heads and the BERT pooler in the weights are dropped (the
simulator maps the encoder); every other tensor must match the config exactly, and any
mismatch is a `UserError` naming the file and the first offending keys.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece
from torch import nn

from simulator.errors import UserError
from workloads.bert import model as bert_model
from workloads.gpt2 import model as gpt2_model

FAMILIES = ("gpt2", "bert", "mobilebert")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
# Checkpoints of task models (BertForMaskedLM, ...) nest the encoder under this prefix.
ENCODER_PREFIXES = {"bert": "bert.", "mobilebert": "mobilebert."}
# Task heads and the pooler: present in many BERT checkpoints, not part of the encoder.
DROPPED_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "pooler.")
# Constant buffers HF saves with the embeddings; our forward recomputes them.
DROPPED_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")
_SHOWN_KEYS = 3  # how many offending keys an error message names


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for accuracy runs: our torch forward (eval mode) plus its tokenizer."""

    family: str
    name: str
    config: dict
    model: nn.Module
    tokenizer: Tokenizer | None
    path: Path | None


def load_checkpoint(path: str | Path, name: str | None = None) -> LoadedModel:
    """Our forward of the checkpoint in folder `path`; `name` defaults to the folder's name.

    Names such as `minilm` or `gpt2-pydoc` are resolved to folders by `workloads.registry`.
    """
    folder = Path(path)
    name = name or folder.name
    if not folder.is_dir():
        raise UserError(f"{folder}: checkpoint folder not found (expected a folder with "
                        f"config.json and one of {', '.join(WEIGHT_FILES)})")
    config = read_config(folder)
    family = config["model_type"]
    model = model_from_config(config, str(folder / "config.json"))
    weights_file, tensors = read_weights(folder)
    if family == "gpt2":
        gpt2_model.load_hf_state_dict(model, tensors, str(weights_file))
    else:
        load_encoder_state_dict(model, tensors, ENCODER_PREFIXES[family], str(weights_file))
    return LoadedModel(family=family, name=name, config=config, model=model.eval(),
                       tokenizer=load_tokenizer(folder), path=folder)


def random_model(config: dict, name: str, source: str = "config.json") -> LoadedModel:
    """A LoadedModel with seed-0 random weights and no tokenizer, from a config dict alone
    (for published shapes whose weights are not on the machine)."""
    family = _family(config, source)
    model = model_from_config(config, source).eval()
    return LoadedModel(family=family, name=name, config=dict(config), model=model,
                       tokenizer=None, path=None)


def read_config(folder: Path) -> dict:
    """`config.json` of a checkpoint folder, checked to be a supported family."""
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(f"{path}: missing; a checkpoint folder needs the Hugging Face config.json")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(config).__name__}")
    _family(config, str(path))
    return config


def _family(config: dict, source: str) -> str:
    family = config.get("model_type")
    if family not in FAMILIES:
        raise UserError(f"{source}: model_type: expected one of {', '.join(FAMILIES)}, "
                        f"got {family!r}")
    return family


def model_from_config(config: dict, source: str = "config.json") -> nn.Module:
    """A seed-0 randomly initialised forward of the config's family."""
    builders = {"gpt2": gpt2_model.from_hf_config, "bert": bert_model.bert_from_hf_config,
                "mobilebert": bert_model.mobilebert_from_hf_config}
    return builders[_family(config, source)](config, source)


def read_weights(folder: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """(file read, tensors by key) from the first weight file present; floats upcast to fp32."""
    for file_name in WEIGHT_FILES:
        path = folder / file_name
        if path.is_file():
            return path, {key: _to_fp32(tensor) for key, tensor in _read_weight_file(path).items()}
    raise UserError(f"{folder}: no weights; looked for {', '.join(WEIGHT_FILES)}")


def _to_fp32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if tensor.is_floating_point() else tensor


def _read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".index.json"):
        return _read_sharded_safetensors(path)
    if path.suffix == ".safetensors":
        try:
            return load_file(path)
        except (SafetensorError, OSError) as exc:
            raise UserError(f"{path}: cannot read weights ({_one_line(exc)})") from None
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt pickle can fail in the unpickler with any error type
        raise UserError(f"{path}: cannot read weights ({_one_line(exc)})") from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise UserError(f"{path}: expected a state dict (tensor name -> tensor), "
                        f"got {type(tensors).__name__}")
    return tensors


def _read_sharded_safetensors(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        shards = sorted(set(weight_map.values()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise UserError(f"{index_path}: weight_map: expected a JSON object mapping tensor names "
                        f"to shard files ({_one_line(exc)})") from None
    tensors: dict[str, torch.Tensor] = {}
    for shard in shards:
        tensors.update(_read_weight_file(index_path.parent / shard))
    return tensors


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def load_encoder_state_dict(model: nn.Module, tensors: dict[str, torch.Tensor], prefix: str,
                            source: str) -> nn.Module:
    """Copy an HF BERT-family state dict into `model` (BertEncoder or MobileBert).

    Keys may carry `prefix` (task-model checkpoints); then the tensors outside it are
    task heads and are dropped, as are the pooler and constant buffers. Old TF-converted
    checkpoints name LayerNorm parameters gamma/beta; they are renamed.
    """
    if any(key.startswith(prefix) for key in tensors):
        tensors = {key[len(prefix):]: value for key, value in tensors.items()
                   if key.startswith(prefix)}
    tensors = {_modern_norm_name(key): value for key, value in tensors.items()
               if not key.startswith(DROPPED_PREFIXES) and key not in DROPPED_BUFFERS}
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise UserError(f"{source}: {len(missing)} tensor(s) missing for this config.json: "
                        + _describe(missing, expected))
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise UserError(f"{source}: {len(unexpected)} unexpected tensor(s) for this config.json: "
                        + _describe(unexpected, tensors))
    mismatched = [key for key in expected if tensors[key].shape != expected[key].shape]
    if mismatched:
        shown = [f"{key} {tuple(tensors[key].shape)} (config.json expects "
                 f"{tuple(expected[key].shape)})" for key in mismatched[:_SHOWN_KEYS]]
        raise UserError(f"{source}: {len(mismatched)} tensor shape(s) differ from config.json: "
                        + _shown_list(shown, len(mismatched)))
    model.load_state_dict(tensors, strict=True)
    return model


def _modern_norm_name(key: str) -> str:
    for old, new in ((".gamma", ".weight"), (".beta", ".bias")):
        if key.endswith(old) and "LayerNorm" in key:
            return key[: -len(old)] + new
    return key


def _describe(keys: list[str], tensors: dict[str, torch.Tensor]) -> str:
    return _shown_list([f"{key} {tuple(tensors[key].shape)}" for key in keys[:_SHOWN_KEYS]], len(keys))


def _shown_list(shown: list[str], total: int) -> str:
    return ", ".join(shown) + (", ..." if total > len(shown) else "")


def load_tokenizer(folder: Path) -> Tokenizer | None:
    """The folder's tokenizer with padding switched off (callers pad), or None if it has none.

    Preference: tokenizer.json; vocab.txt (BERT WordPiece, lower-casing per
    tokenizer_config.json `do_lower_case`, default true); vocab.json + merges.txt (GPT-2).
    """
    try:
        if (folder / "tokenizer.json").is_file():
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        elif (folder / "vocab.txt").is_file():
            tokenizer = wordpiece_tokenizer(folder / "vocab.txt", _lowercase(folder))
        elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
            tokenizer = byte_level_bpe_tokenizer(folder / "vocab.json", folder / "merges.txt")
        else:
            return None
    except UserError:
        raise
    except Exception as exc:  # tokenizers raises bare Exception for malformed files
        raise UserError(f"{folder}: cannot read the tokenizer ({_one_line(exc)})") from None
    tokenizer.no_padding()
    return tokenizer


def _lowercase(folder: Path) -> bool:
    path = folder / "tokenizer_config.json"
    if not path.is_file():
        return True
    try:
        lowercase = json.loads(path.read_text(encoding="utf-8")).get("do_lower_case", True)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise UserError(f"{path}: not a valid JSON object ({_one_line(exc)})") from None
    if not isinstance(lowercase, bool):
        raise UserError(f"{path}: do_lower_case: expected true or false, got {lowercase!r}")
    return lowercase


def wordpiece_tokenizer(vocab_path: Path, lowercase: bool) -> Tokenizer:
    """The BERT tokenizer: normalise, split on whitespace/punctuation, WordPiece, [CLS] x [SEP]."""
    tokenizer = Tokenizer(WordPiece.from_file(str(vocab_path), unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = [(token, tokenizer.token_to_id(token)) for token in ("[CLS]", "[SEP]")]
    if any(token_id is None for _, token_id in specials):
        raise UserError(f"{vocab_path}: a BERT vocabulary needs the tokens [CLS] and [SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=specials)
    tokenizer.decoder = decoders.WordPiece()
    return tokenizer


def byte_level_bpe_tokenizer(vocab_path: Path, merges_path: Path) -> Tokenizer:
    """The GPT-2 tokenizer: byte-level BPE without a prefix space or special-token template."""
    tokenizer = Tokenizer(BPE.from_file(str(vocab_path), str(merges_path)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer
