"""One LoRA training step with the analog model in the loop against one plain FP step.

The embedded gpt2-pydoc, LoRA rank 8 / alpha 32 / dropout 0.1 on all 49 projections,
distillation (KL to the FP logits), batch 8 x 128 tokens, AdamW. "analog": every
projection runs through the differentiable tile twin of hermes64 (noise management,
8-bit DAC/ADC with straight-through gradients, additive weight noise 6.7 % of max|W|
drawn every step, output noise 0.04): the chip-agnostic training step of `aimcsim
adapt`. "fp": the same adapters on the plain FP32 model, same batch and loss. The two
steps alternate in one process, same thread count; times are medians over --repeats
after one warm-up each.

Memory: each variant runs in its own child process, which reports (Linux /proc) the
peak extra resident memory of one training step (after a warm-up step, the kernel's
peak mark is reset with /proc/self/clear_refs = 5; VmHWM minus the RSS before the step).

    python benchmarks/adapt_speed.py [--json F] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

from analog_forward import in_fresh_process, status_kib  # one /proc reader and child runner
from simulator.commands.common import write_json_atomic

BATCH, TOKENS = 8, 128
VARIANTS = ("fp", "analog")


def build(threads: int, variant: str):
    """(step function) for one variant: a closure over its model, optimiser and batch."""
    import numba
    import torch

    from simulator.adapt import data, losses
    from simulator.adapt.lora import attach_lora, freeze_all_but_adapters
    from simulator.adapt.train import AdaptConfig, build_student
    from simulator.hw.loader import load_hw
    from workloads.registry import load_model

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    loaded = load_model("gpt2-pydoc")
    names = loaded.model.projection_names()
    config = AdaptConfig(batch=BATCH, seq=TOKENS)
    if variant == "analog":
        student, trainable = build_student(loaded, load_hw("hermes64"), names, config)
    else:
        import copy
        student = copy.deepcopy(loaded.model)
        attach_lora(student, names, config.rank, config.alpha, config.dropout)
        trainable = freeze_all_but_adapters(student)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    inputs = data.lm_batch(loaded, TOKENS, BATCH, seed=0, step=0)
    student.train()

    def step():
        with torch.no_grad():
            teacher = loaded.model(inputs)
        loss = losses.kl_to_teacher(teacher, student(inputs))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def _peak_mib(variant: str, threads: int, result_queue) -> None:
    step = build(threads, variant)
    step()  # warm-up
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
    before_kib = status_kib("VmRSS")
    step()
    result_queue.put((status_kib("VmHWM") - before_kib) / 1024.0)


def peak_mib(variant: str, threads: int) -> float:
    return in_fresh_process(_peak_mib, variant, threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    steps = {variant: build(args.threads, variant) for variant in VARIANTS}
    times = {variant: [] for variant in VARIANTS}
    for variant in VARIANTS:
        steps[variant]()  # warm-up
    for _ in range(args.repeats):
        for variant in VARIANTS:
            started = time.perf_counter()
            steps[variant]()
            times[variant].append(time.perf_counter() - started)
    medians = {variant: statistics.median(times[variant]) for variant in VARIANTS}
    peaks = {variant: peak_mib(variant, args.threads) for variant in VARIANTS}
    ratio = medians["analog"] / medians["fp"]
    print(f"gpt2-pydoc LoRA training step, batch {BATCH} x {TOKENS}, {args.threads} thread(s), "
          f"medians of {args.repeats}")
    for variant in VARIANTS:
        print(f"  {variant:>6}: {medians[variant]:.3f} s per step, peak extra memory {peaks[variant]:.0f} MiB")
    print(f"  analog / fp: {ratio:.2f}x (goal <= 3x)")
    if args.json:
        write_json_atomic(args.json, {"median_s": medians, "times_s": times, "ratio": ratio,
                                      "peak_extra_mib": peaks, "threads": args.threads,
                                      "batch": BATCH, "tokens": TOKENS})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
