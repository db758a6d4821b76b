"""Train the embedded `gpt2-pydoc` model: `python -m workloads.gpt2.train_pydoc`.

Why a model of our own: the simulator must show accuracy on a fresh machine with no
network, so it ships a small GPT-2 trained on text that every CPython install has
(see `workloads.gpt2.corpus`). Depth matches GPT-2 small (12 blocks, so the same 49
projections to map) while the width is narrow, so the checkpoint is a few MB.

Seeded and single-threaded, so the same command on the same Python gives the same
weights. Writes config.json, tokenizer.json, model.safetensors (fp16, HF key names and
Conv1D layout) and README.md into the output folder, replacing it atomically.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from workloads.gpt2.corpus import (
    END_OF_TEXT, EVAL_HOLDOUT_MODULUS, fingerprint, load_splits, python_version,
    token_stream, windows,
)
from workloads.gpt2.model import GPT2, GPT2Config, to_hf_state_dict

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "gpt2-pydoc"


@dataclass(frozen=True)
class TrainSettings:
    seed: int = 0
    vocab_size: int = 4096
    n_layer: int = 12
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 256
    batch_size: int = 8
    steps: int = 700
    peak_lr: float = 2e-3
    final_lr_fraction: float = 0.1
    warmup_steps: int = 60
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 100


def train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style: any byte sequence is encodable) on the training text."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def cosine_lr(step: int, settings: TrainSettings) -> float:
    """Linear warm-up, then cosine decay to `final_lr_fraction` of the peak."""
    if step < settings.warmup_steps:
        return settings.peak_lr * (step + 1) / settings.warmup_steps
    progress = (step - settings.warmup_steps) / max(1, settings.steps - settings.warmup_steps)
    floor = settings.final_lr_fraction
    return settings.peak_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: GPT2, settings: TrainSettings) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not biases, LayerNorms, or positions)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():  # the tied head appears once, as wte
        (decay if parameter.dim() == 2 and "wpe" not in name else no_decay).append(parameter)
    return torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=settings.peak_lr, betas=(0.9, 0.95))


def sample_batch(stream: np.ndarray, settings: TrainSettings, rng: np.random.Generator):
    """Random windows of n_positions + 1 tokens: inputs and next-token targets."""
    starts = rng.integers(0, len(stream) - settings.n_positions - 1, size=settings.batch_size)
    rows = np.stack([stream[s:s + settings.n_positions + 1] for s in starts])
    batch = torch.from_numpy(rows.astype(np.int64))
    return batch[:, :-1], batch[:, 1:]


@torch.no_grad()
def heldout_loss(model: GPT2, eval_stream: np.ndarray, n_positions: int) -> float:
    """Mean next-token NLL (nats) over the held-out windows, every token counted once."""
    model.eval()
    inputs, targets = (torch.from_numpy(array) for array in windows(eval_stream, n_positions))
    total_nll = 0.0
    for first in range(0, len(inputs), 16):
        logits = model(inputs[first:first + 16])
        total_nll += F.cross_entropy(logits.flatten(0, 1), targets[first:first + 16].flatten(),
                                     reduction="sum").item()
    model.train()
    return total_nll / targets.numel()


def round_to_fp16(model: GPT2) -> None:
    """Make the in-memory weights equal to what the fp16 checkpoint will hold."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())


def train(settings: TrainSettings, log=print) -> tuple[GPT2, Tokenizer, dict]:
    started_s = time.time()
    torch.manual_seed(settings.seed)
    splits = load_splits()
    tokenizer = train_tokenizer([doc.text for doc in splits.train], settings.vocab_size)
    train_stream = token_stream(tokenizer, splits.train)
    eval_stream = token_stream(tokenizer, splits.eval)
    log(f"corpus: {len(splits.train)} train docs ({len(train_stream)} tokens), "
        f"{len(splits.eval)} eval docs ({len(eval_stream)} tokens)")
    config = GPT2Config(vocab_size=tokenizer.get_vocab_size(), n_positions=settings.n_positions,
                        n_embd=settings.n_embd, n_layer=settings.n_layer, n_head=settings.n_head)
    model = GPT2(config)
    optimizer = make_optimizer(model, settings)
    rng = np.random.default_rng(settings.seed)
    for step in range(settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings)
        inputs, targets = sample_batch(train_stream, settings, rng)
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        optimizer.step()
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
            log(f"step {step + 1}/{settings.steps} train_loss {loss.item():.3f} "
                f"eval_loss {heldout_loss(model, eval_stream, settings.n_positions):.3f} "
                f"({time.time() - started_s:.0f} s)")
    round_to_fp16(model)
    eval_loss = heldout_loss(model, eval_stream, settings.n_positions)
    provenance = {
        "python": python_version(),
        "train_sha256": fingerprint(splits.train),
        "eval_sha256": fingerprint(splits.eval),
        "eval_topics": [doc.name.removeprefix("pydoc:") for doc in splits.eval],
        "train_documents": len(splits.train), "train_tokens": int(len(train_stream)),
        "eval_tokens": int(len(eval_stream)),
        "fp_eval_loss_nats": round(eval_loss, 5),
        "fp_perplexity": round(math.exp(eval_loss), 4),
        "train_wall_s": round(time.time() - started_s, 1),
        "settings": asdict(settings),
    }
    log(f"held-out perplexity (fp16 weights): {provenance['fp_perplexity']}")
    return model, tokenizer, provenance


def write_checkpoint(out: Path, model: GPT2, tokenizer: Tokenizer, provenance: dict) -> None:
    """Write into a temp folder beside `out`, then swap it in, so `out` is never half-written."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".tmp-{out.name}-"))
    try:
        eot_id = tokenizer.token_to_id(END_OF_TEXT)
        config = dict(model.config.to_hf_dict(), bos_token_id=eot_id, eos_token_id=eot_id,
                      aimcsim_corpus=provenance)
        (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        tokenizer.save(str(staging / "tokenizer.json"))
        weights = {name: tensor.half() for name, tensor in to_hf_state_dict(model).items()}
        save_file(weights, str(staging / "model.safetensors"), metadata={"format": "pt"})
        (staging / "README.md").write_text(readme_text(config, provenance))
        for path in staging.iterdir():
            path.chmod(0o644)
        staging.chmod(0o755)  # mkdtemp makes it private; the shipped folder is not
        previous = out.with_name(f".old-{out.name}")
        if out.exists():
            os.replace(out, previous)
        os.replace(staging, out)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def readme_text(config: dict, provenance: dict) -> str:
    settings = provenance["settings"]
    return f"""# gpt2-pydoc: the embedded default model of aimcsim

A small GPT-2 trained from scratch so that `aimcsim` can report accuracy offline:
{config['n_layer']} blocks, n_embd {config['n_embd']}, {config['n_head']} heads, context {config['n_positions']}, vocabulary {config['vocab_size']}.
It has GPT-2 small's depth, hence the same 49 projections (4 per block + `lm_head`,
tied to `transformer.wte`). Weights are fp16 in `model.safetensors` with Hugging Face
GPT-2 key names and Conv1D layout, so `transformers.GPT2LMHeadModel.from_pretrained`
loads this folder as well.

## Corpus (read at run time, not stored here)
Text that ships with every CPython, read from the running interpreter:
- `pydoc_data.topics.topics`: the language-reference topics shown by `help()`;
- docstrings of the standard-library source files, extracted with `ast`
  (test suites and site-packages skipped; sorted by path).

Held-out split: the pydoc topics whose name's sha256 (first 4 bytes, big endian) is
divisible by {EVAL_HOLDOUT_MODULUS}; a text shared by two topics is held out once and never trained on.

- eval: {len(provenance['eval_topics'])} topics, {provenance['eval_tokens']} tokens: {', '.join(provenance['eval_topics'])}
- train: the other topics plus the docstrings, {provenance['train_documents']} documents, {provenance['train_tokens']} tokens
- built with Python {provenance['python']}; sha256 over document names and texts:
  train `{provenance['train_sha256']}`,
  eval `{provenance['eval_sha256']}`

Another Python version has different text: aimcsim then warns and still runs (compare
against that run's own FP reference, which is always re-measured).

## Licence of the training text
The text is Python's own: the pydoc topics (generated from the Python documentation)
and the docstrings of the standard-library sources, Copyright (c) 2001 Python Software
Foundation; All Rights Reserved. Python software and documentation are licensed under
the PSF License Agreement (Python Software Foundation License Version 2); starting with
Python 3.8.6, examples, recipes and other code in the documentation are dual licensed
under the PSF License Agreement and the Zero-Clause BSD license
(https://docs.python.org/3/license.html). The text is read from the local Python
installation at training and evaluation time and is not stored in this repository; the
tokenizer and the weights here were produced from it by aimcsim's training script.

## Result
Held-out perplexity with the stored fp16 weights, all projections in FP32:
**{provenance['fp_perplexity']}** (mean NLL {provenance['fp_eval_loss_nats']} nats/token).
Non-overlapping windows of {config['n_positions']} tokens predict each held-out token once; the
trailing partial window is dropped. `aimcsim accuracy --mapping all-digital` reproduces it.

## Reproduce
    python -m workloads.gpt2.train_pydoc --steps {settings['steps']} --seed {settings['seed']}

One CPU thread; AdamW (betas 0.9/0.95, weight decay {settings['weight_decay']} on matrices);
peak LR {settings['peak_lr']}, {settings['warmup_steps']} warm-up steps, cosine decay to {settings['final_lr_fraction']} of the peak;
{settings['steps']} steps of {settings['batch_size']} random windows of {config['n_positions']} tokens; gradient clip {settings['grad_clip']}.
Byte-level BPE tokenizer (`tokenizers`) trained on the training split.
Wall time {provenance['train_wall_s']:.0f} s, one thread on a 2-core machine shared with other jobs.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--steps", type=int, default=TrainSettings.steps)
    parser.add_argument("--seed", type=int, default=TrainSettings.seed)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    settings = TrainSettings(seed=args.seed, steps=args.steps,
                             eval_every=min(TrainSettings.eval_every, args.steps))
    model, tokenizer, provenance = train(settings, log=lambda line: print(line, flush=True))
    write_checkpoint(args.out, model, tokenizer, provenance)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
