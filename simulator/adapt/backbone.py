"""Encoders on ONE programmed backbone: several adapter sets swapped in and scored on the same chips.

The chips (one realisation per seed) are programmed once; at each drift time every LoRA
set (none, chip-agnostic, chip-specific, one per task or text domain) is loaded into
the same digital adapters and scored on the same sentences with the same MVM noise
stream (`set_time` restarts it), so the columns differ only by their adapters. AHWA
programs other weights, so it gets its own backbone of the same chip seeds.

Scores per (set, time, chip), from one forward of the evaluation sentences of both text
domains: token embedding cosine to FP per domain (`cosine:pydoc`, `cosine:docstrings`;
the `aimcsim accuracy` metric) and the accuracy of the FP-trained `source` head
(`task:source`). Sentences run in length-sorted groups, padded within a group only.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from simulator.accuracy.metrics import mean_std
from simulator.adapt import data
from simulator.adapt.lora import LoRA, attach_lora
from simulator.analog.layer import convert_to_analog, set_time
from simulator.errors import UserError

GROUP_SENTENCES = 16
METRICS = tuple(f"cosine:{d}" for d in data.DOMAINS) + ("task:source",)


@dataclass(frozen=True)
class EvalText:
    """Evaluation sentences of both domains in length-sorted groups, with domain labels."""

    groups: tuple[dict[str, torch.Tensor], ...]
    labels: tuple[torch.Tensor, ...]  # per group: 0 pydoc, 1 docstrings


def eval_text(loaded, per_domain: int) -> EvalText:
    """`per_domain` held-out sentences of each domain, evenly spread over its eval set."""
    sentences, labels = [], []
    for label, domain in enumerate(data.DOMAINS):
        pool = data.domain_text(domain).eval
        if not 1 <= per_domain <= len(pool):
            raise UserError(f"--eval-sentences: expected 1..{len(pool)} per domain, got {per_domain}")
        sentences += [pool[i * len(pool) // per_domain] for i in range(per_domain)]
        labels += [label] * per_domain
    lengths = data.encode_sentences(loaded, sentences)["attention_mask"].sum(1).tolist()
    by_length = sorted(range(len(sentences)), key=lambda i: (lengths[i], i))
    order = [by_length[i:i + GROUP_SENTENCES] for i in range(0, len(by_length), GROUP_SENTENCES)]
    return EvalText(tuple(data.encode_sentences(loaded, [sentences[i] for i in group]) for group in order),
                    tuple(torch.tensor([labels[i] for i in group]) for group in order))


@torch.no_grad()
def _scores(model: nn.Module, text: EvalText, head: nn.Module, reference, replicas: int) -> dict[str, list[float]]:
    """Per chip: cosine per domain and task accuracy. `reference`: the FP hidden states per group
    (None: score `model` itself as FP, one replica)."""
    from workloads.bert.model import sentence_embedding
    dot = {d: torch.zeros(replicas, dtype=torch.float64) for d in range(len(data.DOMAINS))}
    tokens = {d: 0 for d in range(len(data.DOMAINS))}
    correct = torch.zeros(replicas, dtype=torch.float64)
    total = 0
    for index, (batch, labels) in enumerate(zip(text.groups, text.labels)):
        hidden = model(**{k: v.repeat(replicas, 1) for k, v in batch.items()})
        hidden = hidden.view(replicas, *batch["input_ids"].shape, -1)
        mask = batch["attention_mask"].bool()
        logits = head(sentence_embedding(hidden.flatten(0, 1), batch["attention_mask"].repeat(replicas, 1)))
        correct += (logits.argmax(-1).view(replicas, -1) == labels).double().sum(1)
        total += len(labels)
        fp = hidden[0] if reference is None else reference[index]
        for domain in dot:
            keep = mask & (labels == domain)[:, None]
            cos = nn.functional.cosine_similarity(fp[keep].double()[None], hidden[:, keep].double(), dim=-1)
            dot[domain] += cos.sum(1)
            tokens[domain] += int(keep.sum())
    scores = {f"cosine:{d}": (dot[i] / tokens[i]).tolist() for i, d in enumerate(data.DOMAINS)}
    scores["task:source"] = (correct / total).tolist()
    return scores


@torch.no_grad()
def fp_hidden(loaded, text: EvalText) -> list[torch.Tensor]:
    return [loaded.model(**batch) for batch in text.groups]


def _load_set(adapters: dict[str, LoRA], adapter_file, seeds: list[int]) -> None:
    """Copy a LoRA file's tensors into the backbone's adapters (None: zero them); a file with one
    set serves every chip, a chip-specific file gives chip seeds[k] its own set."""
    with torch.no_grad():
        for name, module in adapters.items():
            if adapter_file is None:
                module.lora_B.zero_()
                continue
            a, b = adapter_file.tensors[f"{name}.lora_A"], adapter_file.tensors[f"{name}.lora_B"]
            if a.shape[1] != module.rank or float(adapter_file.meta["alpha"]) != module.alpha:
                raise UserError(f"{adapter_file.path}: rank/alpha differ from the other adapter sets")
            chips = adapter_file.chips
            picked = slice(None) if chips is None else [chips.index(s) for s in seeds]
            module.lora_A.copy_(a[picked].expand_as(module.lora_A))
            module.lora_B.copy_(b[picked].expand_as(module.lora_B))


def score_sets(loaded, hw, names: list[str], sets: dict[str, object], hwa_file, head: nn.Module,
               times_s: list[float], seeds: list[int], per_domain: int, progress=None) -> dict:
    """{"fp": {metric: value}, "scores": {set: [{t_s, metric: [per chip]}...]}} for the LoRA `sets`
    (name -> AdapterFile, None for no adapters) on one backbone, and AHWA (`hwa_file`) on its own."""
    text = eval_text(loaded, per_domain)
    reference = fp_hidden(loaded, text)
    fp = {k: v[0] for k, v in _scores(loaded.model.eval(), text, head, None, 1).items()}
    rank, alpha = next(((int(f.meta["rank"]), float(f.meta["alpha"])) for f in sets.values() if f is not None), (8, 32.0))
    backbone = convert_to_analog(loaded.model, names, hw, seeds).eval()  # programmed once
    adapted = [n for n in names if any(f is not None and f"{n}.lora_A" in f.tensors for f in sets.values())]
    adapters = attach_lora(backbone, adapted, rank, alpha, sets=len(seeds))
    backbones = [(backbone, sets)]
    if hwa_file is not None:
        backbones.append((convert_to_analog(hwa_file.programmed_model(loaded.model), names, hw, seeds).eval(),
                          {"hwa": None}))
    scores = {label: [] for _, group in backbones for label in group}
    done, total = 0, len(times_s) * len(scores)
    for t_s in times_s:
        for model, group in backbones:
            for label, adapter_file in group.items():
                if model is backbone:
                    _load_set(adapters, adapter_file, seeds)
                set_time(model, t_s)  # same state, restarted MVM noise stream: common random numbers
                scores[label].append({"t_s": t_s, **_scores(model, text, head, reference, len(seeds))})
                done += 1
                if progress:
                    progress(done, total, label, t_s)
    return {"fp": fp, "scores": scores, "eval_sentences_per_domain": per_domain}


def summarise(entry: dict, metric: str) -> dict:
    mean, std = mean_std(entry[metric])
    return {"t_s": entry["t_s"], "mean": mean, "std": std, "values": entry[metric]}
