"""`aimcsim adapt`: train digital LoRA adapters (or AHWA weights) with the analog model in the loop.

LoRA: the analog weights stay as programmed; small digital adapters beside the chosen
projections learn to undo the analog error, by distillation to the FP model (or the
`source` task loss for encoders). `--mode agnostic` trains one adapter set under noise
injection for every chip; `--mode specific` one set per chip on its programmed
realisation at `--t-train`. AHWA (`--method hwa`) fine-tunes every weight under the
same noise injection, to be programmed instead of the FP weights. The run checkpoints
next to `--out` and resumes after an interruption.

`--table DIR` instead runs the whole comparison (simulator.adapt.experiment): trains
chip-agnostic LoRA, chip-specific LoRA and AHWA (plus, for encoders, one adapter set per
task), scores FP / no adapters / each adaptation over `--t` and `--chips` chips, and
writes DIR/table.md and DIR/table.json; `--quick` is the short preset.
"""
from __future__ import annotations

import argparse
import os
import time

from simulator.atomic import JSON, SAFETENSORS
from simulator.commands.common import (
    MAX_BATCH, MAX_SEEDS, MAX_TOKENS, add_hw_args, bounded_int, check_outputs, finite_float, load_hw_arg,
    load_model_checked, non_negative_int, positive_int, write_json_atomic,
)
from simulator.errors import UserError

ISSUE_TIMES = "0,1h,1d,1w,1mo,1y,10y"
TRAIN_DEFAULTS = {"steps": 100, "batch": 8, "seq": 128, "t_train": "0", "chips": 1}


MAX_STEPS = 10_000_000


def add_parser(sub) -> None:
    p = sub.add_parser("adapt", help="train LoRA adapters / AHWA weights with the analog model in the loop",
                       description=__doc__.split("\n")[0])
    add_hw_args(p, default="hermes64")
    p.add_argument("--model", default="gpt2-pydoc", help="gpt2-pydoc, minilm, or a checkpoint folder (default gpt2-pydoc)")
    p.add_argument("--mapping", default="all-analog", help="all-analog | mapping YAML: which projections are analog "
                                                          "(default all-analog)")
    p.add_argument("--method", default="lora", choices=("lora", "hwa"),
                   help="lora: digital adapters, analog frozen; hwa: fine-tune every weight (default lora)")
    p.add_argument("--mode", default="agnostic", choices=("agnostic", "specific"),
                   help="LoRA: one adapter set for all chips (noise injection) or one per chip (default agnostic)")
    p.add_argument("--rank", type=bounded_int(MAX_TOKENS), default=8, help="LoRA rank r (default 8)")
    p.add_argument("--alpha", type=finite_float("--alpha", 0.0, above=True), default=32.0, help="LoRA scale alpha, output times alpha/r (default 32)")
    p.add_argument("--dropout", type=finite_float("--dropout"), default=0.1, help="dropout on the adapter input (default 0.1)")
    p.add_argument("--targets", default="*", help="comma-separated globs over analog projection names (default *)")
    p.add_argument("--steps", type=bounded_int(MAX_STEPS), default=None,
                   help="training steps (default 100; table 60, quick 20)")
    p.add_argument("--lr", type=finite_float("--lr", 0.0, above=True), default=None,
                   help="AdamW learning rate (default 2e-3 LoRA, 1e-4 AHWA)")
    p.add_argument("--batch", type=bounded_int(MAX_BATCH), default=None, help="sequences per step (default 8; quick 4)")
    p.add_argument("--seq", type=bounded_int(MAX_TOKENS), default=None,
                   help="LMs: tokens per sequence (default 128; quick 64)")
    p.add_argument("--t-train", default=None,
                   help="specific: drift time of the programmed chips, e.g. 1d (default 0; table 1d)")
    p.add_argument("--chips", type=bounded_int(MAX_SEEDS), default=None,
                   help="specific: chips 0..N-1, one adapter set each (default 1; table: chips scored, 10, quick 3)")
    p.add_argument("--seed", type=non_negative_int("--seed"), default=0,
                   help="seed of batches, noise, dropout and init (default 0)")
    p.add_argument("--weight-noise", default="additive", choices=("additive", "pcm", "none"),
                   help="training weight noise (default additive)")
    p.add_argument("--weight-sigma", type=finite_float("--weight-sigma", 0.0), default=0.067,
                   help="additive weight noise, fraction of max|W| (default 0.067)")
    p.add_argument("--out-noise", type=finite_float("--out-noise", 0.0), default=None, help="training output noise (default: the config's)")
    p.add_argument("--loss", default="distill", choices=("distill", "task"),
                   help="distill to the FP model, or the encoders' source-task loss (default distill)")
    p.add_argument("--domain", default="pydoc", help="encoders: training text domain, pydoc or docstrings (default pydoc)")
    p.add_argument("--checkpoint-every", type=positive_int, default=20,
                   help="steps between checkpoints in <out>.ckpt (default 20)")
    p.add_argument("--out", metavar="FILE", help="adapter file to write (.safetensors; required unless --table)")
    p.add_argument("--table", metavar="DIR", help="run the whole comparison table into DIR (see above)")
    p.add_argument("--quick", action="store_true", help="--table: the short preset (3 chips, t 0,1d,10y, 20 steps)")
    p.add_argument("--t", default=None, help=f"--table: drift times scored (default {ISSUE_TIMES}; quick 0,1d,10y)")
    p.add_argument("--eval-sentences", type=positive_int, default=None,
                   help="--table, encoders: held-out sentences per text domain (default 32; quick 12)")
    p.add_argument("--max-tokens", type=positive_int, default=None,
                   help="--table, LMs: held-out tokens scored (default 4096; quick 1024)")
    p.add_argument("--json", metavar="FILE", help="write the run summary (config, loss curve) as JSON")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="show a progress bar (default on)")
    p.add_argument("--stop-after", type=positive_int, default=None, help=argparse.SUPPRESS)  # tests: interrupt
    p.set_defaults(func=run)


def check_adapt_sizes(args, loaded, names) -> None:
    """--domain known, --seq within the context, --rank within the widths, the batch and chips
    within memory: checked before the first step."""
    from simulator.adapt.data import DOMAINS
    from simulator.commands.memory import check_seeds_memory, check_training_memory
    if args.domain not in DOMAINS:
        raise UserError(f"--domain: expected one of {', '.join(DOMAINS)}, got {args.domain!r}")
    config = loaded.model.config
    positions = config.n_positions if loaded.family == "gpt2" else config.max_position_embeddings
    if args.seq > positions:
        raise UserError(f"--seq: {loaded.name} has a {positions}-token context, got {args.seq}")
    widest = max(min(loaded.model.get_submodule(n).in_features, loaded.model.get_submodule(n).out_features)
                 for n in names)
    if args.method == "lora" and args.rank > widest:
        raise UserError(f"--rank: expected at most {widest} (the widest analog projection's smaller "
                        f"dimension), got {args.rank}")
    check_training_memory(loaded, args.batch, args.seq)
    if args.method == "lora" and args.mode == "specific":
        check_seeds_memory(loaded, names, args.chips, flag="--chips")


def run(args) -> int:
    if args.table:
        return run_table(args)
    if args.out is None:
        raise UserError("--out: required (the adapter file to write), unless --table DIR runs the comparison")
    for key, value in TRAIN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    from simulator.accuracy.evaluate import analog_projection_names
    from simulator.adapt.files import model_fingerprint, save_adapters
    from simulator.adapt.experiment import identity
    from simulator.adapt.train import AdaptConfig, train
    from simulator.commands.accuracy import mapping_targets, parse_duration_s

    check_outputs(("--out", args.out, SAFETENSORS), ("--json", args.json, JSON))
    hw = load_hw_arg(args)
    config = AdaptConfig(
        method=args.method, mode=args.mode if args.method == "lora" else "agnostic", rank=args.rank,
        alpha=args.alpha, dropout=args.dropout, targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        steps=args.steps, lr=args.lr, batch=args.batch, seq=args.seq,
        t_train_s=parse_duration_s(args.t_train, "--t-train"), chips=tuple(range(args.chips)), seed=args.seed,
        weight_noise=args.weight_noise, weight_sigma=args.weight_sigma, out_noise=args.out_noise,
        loss=args.loss, domain=args.domain, checkpoint_every=args.checkpoint_every)
    if args.method == "hwa" and args.mode == "specific":
        raise UserError("--mode specific: AHWA trains one set of weights for every chip; use --method lora")
    loaded = load_model_checked(args.model)
    names = analog_projection_names(loaded.model, mapping_targets(args.mapping, args.model, hw))
    if not names:
        raise UserError("--mapping: no projection is analog, so there is nothing to adapt")
    check_adapt_sizes(args, loaded, names)
    head = None
    if config.loss == "task" and loaded.family != "gpt2":
        from simulator.adapt.head import train_source_head
        head = train_source_head(loaded, config.seed)
    checkpoint = args.out + ".ckpt"
    started = time.perf_counter()
    result = train(loaded, hw, names, config, checkpoint=checkpoint, progress=args.progress,
                   stop_after=args.stop_after, head=head)
    seconds = time.perf_counter() - started
    trainable = sum(t.numel() for t in result.tensors.values())
    total = sum(p.numel() for p in {id(p): p for p in loaded.model.parameters()}.values())
    meta = {**identity(config), "model": loaded.name, "fingerprint": model_fingerprint(loaded.model),
            "hw": hw.name, "targets": list(config.targets), "seconds": seconds, "losses": result.losses}
    save_adapters(args.out, result.tensors, meta)
    if os.path.exists(checkpoint):
        os.unlink(checkpoint)
    per_set = trainable // config.sets if config.method == "lora" else total  # AHWA: every (tied once) weight
    print(f"{config.method} ({config.mode}) on {loaded.name} / {hw.name}: {config.steps} steps"
          + (f" (resumed at {result.resumed_from})" if result.resumed_from else "")
          + f", loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}, {per_set} trainable parameters "
          f"per chip set ({100.0 * per_set / total:.2f} % of {total}), {seconds:.1f} s")
    print(f"wrote {args.out}")
    if args.json:
        write_json_atomic(args.json, {"config": {**meta, "lr": config.learning_rate, "batch": config.batch,
                                                 "seq": config.seq, "dropout": config.dropout,
                                                 "weight_noise": config.weight_noise,
                                                 "weight_sigma": config.weight_sigma},
                                      "losses": result.losses, "resumed_from": result.resumed_from,
                                      "trainable_parameters_per_set": per_set, "model_parameters": total,
                                      "seconds": seconds})
        print(f"wrote {args.json}")
    return 0


def run_table(args) -> int:
    """`--table DIR`: the comparison of simulator.adapt.experiment, preset + explicit flags."""
    from dataclasses import replace

    from simulator.adapt.experiment import FULL, QUICK, compare, format_markdown
    from simulator.atomic import atomic_output
    from simulator.commands.accuracy import parse_duration_s, parse_times

    settings = QUICK if args.quick else FULL
    overrides = {"times": args.t, "chips": args.chips, "steps": args.steps, "batch": args.batch, "seq": args.seq,
                 "t_train": args.t_train, "max_tokens": args.max_tokens, "eval_sentences": args.eval_sentences}
    settings = replace(settings, seed=args.seed, **{k: v for k, v in overrides.items() if v is not None})
    parse_times(settings.times)  # bad times fail before any training
    parse_duration_s(settings.t_train, "--t-train")
    if args.out is not None:
        raise UserError("--out: not used with --table (the adapter files go into the table folder)")
    if os.path.exists(args.table) and not os.path.isdir(args.table):
        raise UserError(f"--table {args.table}: exists and is not a folder")
    os.makedirs(args.table, exist_ok=True)
    hw = load_hw_arg(args)
    table = compare(args.model, hw, args.table, settings, progress=args.progress)
    markdown = format_markdown(table)
    write_json_atomic(os.path.join(args.table, "table.json"), table)
    with atomic_output(os.path.join(args.table, "table.md"), ".md") as tmp, open(tmp, "w") as handle:
        handle.write(markdown)
    print(markdown)
    print(f"wrote {os.path.join(args.table, 'table.md')} and table.json")
    return 0
