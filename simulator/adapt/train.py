"""The training loop shared by LoRA and AHWA: seeded, resumable, with the analog twin in the loop.

LoRA: the analog projections are twin layers (noise injection for chip-agnostic
adapters, or the frozen programmed realisations of the chosen chips at `t_train_s` for
chip-specific ones), digital adapters sit beside the chosen projections, only adapter
matrices train. AHWA: every weight of the model trains under the same noise injection,
and the result is programmed afterwards.

Schedule: the learning rate warms up linearly over the first `WARMUP_FRACTION` of the
steps and then follows a cosine down to zero, and the gradient norm is clipped at
`CLIP_NORM`, against the instability of the task loss (a head trained on FP embeddings,
so large logits; it diverged at a constant 2e-3 and is still unstable at a 1e-3 peak,
docs/adaptation.md). The rate at step k is a pure function of k, so resuming needs no
scheduler state.

Reproducibility: batch k, the dropout mask and every twin layer's noise at step k are
seeded by (seed, k), so a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (tests/test_adapt_cli.py checks bit equality).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from simulator.adapt import data, losses
from simulator.adapt.lora import attach_lora, freeze_all_but_adapters, lora_modules, match_targets
from simulator.adapt.periphery import NoiseInjection
from simulator.adapt.twin import convert_to_twin, hash_words, reseed_noise
from simulator.atomic import atomic_output
from simulator.errors import UserError

METHODS = ("lora", "hwa")
MODES = ("agnostic", "specific")
LOSSES = ("distill", "task")
WARMUP_FRACTION = 0.1
CLIP_NORM = 1.0


@dataclass(frozen=True)
class AdaptConfig:
    """Everything that determines a training run (and so its checkpoint's identity)."""

    method: str = "lora"
    mode: str = "agnostic"  # lora only: agnostic (noise injection) | specific (programmed chips)
    rank: int = 8
    alpha: float = 32.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("*",)
    steps: int = 100
    lr: float | None = None  # peak rate; None: 2e-3 for LoRA (1e-3 with the task loss), 1e-4 for AHWA
    batch: int = 8
    seq: int = 128  # LMs: tokens per training window
    t_train_s: float = 0.0  # specific: drift time of the programmed chips
    chips: tuple[int, ...] = (0,)  # specific: chip seeds, one adapter set each
    seed: int = 0
    weight_noise: str = "additive"
    weight_sigma: float = 0.067
    out_noise: float | None = None  # None: the config's periphery.out_noise
    loss: str = "distill"  # distill (to FP) | task (encoders: the `source` head)
    domain: str = "pydoc"  # encoders: training text domain
    checkpoint_every: int = 20

    def __post_init__(self):
        for key, value, valid in (("--method", self.method, METHODS), ("--mode", self.mode, MODES),
                                  ("--loss", self.loss, LOSSES)):
            if value not in valid:
                raise UserError(f"{key}: expected one of {', '.join(valid)}, got {value!r}")
        if self.method == "hwa" and self.mode == "specific":
            raise UserError("--mode specific: AHWA trains one set of weights for every chip; use --method lora")
        if self.steps < 1 or self.batch < 1:
            raise UserError("--steps and --batch: expected positive integers")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a value in [0, 1), got {self.dropout}")

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        if self.method == "hwa":
            return 1e-4
        return 1e-3 if self.loss == "task" else 2e-3

    def rate_at(self, step: int) -> float:
        """Linear warm-up, then cosine to zero (step counts from 0)."""
        warmup = max(1, round(WARMUP_FRACTION * self.steps))
        if step < warmup:
            return self.learning_rate * (step + 1) / warmup
        progress = (step - warmup + 1) / max(1, self.steps - warmup + 1)
        return self.learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    @property
    def sets(self) -> int:
        return len(self.chips) if self.mode == "specific" else 1

    def fingerprint(self, extra: dict) -> str:
        payload = json.dumps({**asdict(self), **extra}, sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    tensors: dict[str, torch.Tensor]  # what goes into the output file
    losses: list[float] = field(default_factory=list)
    resumed_from: int = 0


def build_student(loaded, hw, analog_names: list[str], config: AdaptConfig) -> tuple[nn.Module, list[nn.Parameter]]:
    """The model being trained and its trainable parameters."""
    noise = NoiseInjection(config.weight_noise, config.weight_sigma, out_noise=config.out_noise)
    if config.method == "hwa":
        student = convert_to_twin(loaded.model, analog_names, hw, noise=noise, seed=config.seed)
        for parameter in student.parameters():
            parameter.requires_grad_(True)
        return student, list(student.parameters())
    targets = match_targets(analog_names, list(config.targets))
    programmed = None
    if config.mode == "specific":
        from simulator.analog.layer import convert_to_analog, set_time
        programmed = convert_to_analog(loaded.model, analog_names, hw, list(config.chips))
        set_time(programmed, config.t_train_s)
    if programmed is not None:  # the chips' weights are fixed; their per-MVM output noise still acts
        noise = NoiseInjection("none", out_noise=config.out_noise)
    student = convert_to_twin(loaded.model, analog_names, hw, noise=noise, programmed=programmed, seed=config.seed)
    attach_lora(student, targets, config.rank, config.alpha, config.dropout, config.sets, config.seed)
    return student, freeze_all_but_adapters(student)


class Objective:
    """One training step's loss for a family and loss kind."""

    def __init__(self, loaded, config: AdaptConfig, head: nn.Module | None = None):
        self.loaded, self.config, self.head = loaded, config, head
        if loaded.family != "gpt2" and loaded.family not in ("bert", "mobilebert"):
            raise UserError(f"model family {loaded.family!r}: adaptation supports gpt2, bert, mobilebert")
        if config.loss == "task" and (loaded.family == "gpt2" or head is None):
            raise UserError("--loss task: only encoders have a task head (the `source` classifier)")

    def __call__(self, student: nn.Module, step: int) -> torch.Tensor:
        c, sets, teacher = self.config, self.config.sets, self.loaded.model
        if self.loaded.family == "gpt2":
            inputs = data.lm_batch(self.loaded, c.seq, c.batch, c.seed, step)
            with torch.no_grad():
                target = teacher(inputs)
            return losses.kl_to_teacher(target, student(inputs.repeat(sets, 1)), sets)
        if c.loss == "task":
            batch, labels = data.task_batch(self.loaded, c.batch, c.seed, step)
            hidden = student(**_repeat(batch, sets))
            from workloads.bert.model import sentence_embedding
            logits = self.head(sentence_embedding(hidden, batch["attention_mask"].repeat(sets, 1)))
            return losses.task_cross_entropy(logits, labels, sets)
        batch = data.encoder_batch(self.loaded, c.domain, c.batch, c.seed, step)
        with torch.no_grad():
            target = teacher(**batch)
        return losses.cosine_to_teacher(target, student(**_repeat(batch, sets)), batch["attention_mask"], sets)


def _repeat(batch: dict[str, torch.Tensor], sets: int) -> dict[str, torch.Tensor]:
    return {key: value.repeat(sets, 1) for key, value in batch.items()}


def output_tensors(student: nn.Module, config: AdaptConfig) -> dict[str, torch.Tensor]:
    """LoRA: `<projection>.lora_A` [sets, r, in] and `.lora_B` [sets, out, r]; AHWA: the
    trained state dict (its keys are the FP model's: twin layers keep weight/bias names)."""
    if config.method == "lora":
        return {f"{name}.{part}": getattr(module, part).detach().clone().contiguous()
                for name, module in lora_modules(student).items() for part in ("lora_A", "lora_B")}
    return {key: value.detach().clone().contiguous() for key, value in student.state_dict().items()}


def train(loaded, hw, analog_names: list[str], config: AdaptConfig, checkpoint: str | None = None,
          progress: bool = False, stop_after: int | None = None, head: nn.Module | None = None) -> TrainResult:
    """Train and return the output tensors. With `checkpoint`, the state is saved every
    `checkpoint_every` steps and a matching checkpoint is resumed. `stop_after` raises
    KeyboardInterrupt once that many steps are done and saved (tests of resumption)."""
    objective = Objective(loaded, config, head)
    student, trainable = build_student(loaded, hw, analog_names, config)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    identity = config.fingerprint({"model": loaded.name, "hw": hw.name, "analog": analog_names})
    result = TrainResult({})
    start = _resume(checkpoint, identity, trainable, optimizer, result) if checkpoint else 0
    result.resumed_from = start
    student.train()
    loaded.model.eval()
    bar = _progress(config.steps, start, progress)
    for step in range(start, config.steps):
        torch.manual_seed(hash_words(config.seed, step, 1))  # dropout masks
        reseed_noise(student, config.seed, step)
        loss = objective(student, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, CLIP_NORM)
        for group in optimizer.param_groups:
            group["lr"] = config.rate_at(step)
        optimizer.step()
        result.losses.append(float(loss.detach()) / config.sets)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{result.losses[-1]:.4f}")
        done = step + 1
        if checkpoint and (done % config.checkpoint_every == 0 or done == config.steps):
            _save_checkpoint(checkpoint, identity, done, trainable, optimizer, result.losses)
        if stop_after is not None and done == stop_after and done < config.steps:
            raise KeyboardInterrupt
    if bar is not None:
        bar.close()
    result.tensors = output_tensors(student, config)
    return result


def _progress(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(total=total, initial=start, desc="adapt", unit="step", dynamic_ncols=True)


def _save_checkpoint(path: str, identity: str, step: int, trainable, optimizer, losses_so_far) -> None:
    state = {"identity": identity, "step": step, "parameters": [p.detach().clone() for p in trainable],
             "optimizer": optimizer.state_dict(), "losses": list(losses_so_far)}
    with atomic_output(path, ".pt") as tmp:
        torch.save(state, tmp)


def _resume(path: str, identity: str, trainable, optimizer, result: TrainResult) -> int:
    """Load a matching checkpoint into the parameters and optimiser; 0 when there is none."""
    if not os.path.exists(path):
        return 0
    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # a foreign or damaged file: name it, do not guess
        raise UserError(f"{path}: cannot read the training checkpoint ({type(exc).__name__}); "
                        "delete it to start over") from None
    if state.get("identity") != identity:
        raise UserError(f"{path}: checkpoint of a different run (other flags, model or hw); "
                        "delete it or pass another --out")
    with torch.no_grad():
        for parameter, saved in zip(trainable, state["parameters"], strict=True):
            parameter.copy_(saved)
    optimizer.load_state_dict(state["optimizer"])
    result.losses.extend(state["losses"])
    return int(state["step"])
