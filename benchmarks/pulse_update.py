"""Speed of pulsed-device writes, measured side by side in one run.

1. A stochastic pulse-train update (BL 31) of a 512x512 crossbar of soft-bounds devices (`--model`)
   (device-to-device and cycle-to-cycle variation on) against the plain FP rank-1 update
   W -= lr d x^T in torch (`addr_`), interleaved, medians over repeats; also the expected-
   value update. Reports device pulses per second and the time ratio (goal: <= 10x).
   Both run on one thread and are timed in thread CPU time (`time.thread_time`): on the
   shared 2-core machine a 10 ms kernel is preempted far more often than a 50 us one, so
   wall-clock ratios there measured the load, not the code (wall times are printed too).
2. Program-and-verify of GPT-2 small's block weights (shapes only, random Gaussian weights)
   on hermes64 tiles: `--blocks N` of the 12 transformer blocks are programmed and the time
   for all 12 is extrapolated linearly (every block has the same four shapes); `--blocks 12`
   measures the whole 85 M weights.

    PYTHONPATH=$PWD python benchmarks/pulse_update.py [--repeats 30] [--blocks 1] [--model soft_bounds]
"""
from __future__ import annotations

import argparse
import time

import numba
import numpy as np
import torch

from simulator.analog import programming, pulse_update, pulsed
from simulator.hw.loader import load_hw
from simulator.hw.schema import PulsedDeviceConfig

GPT2_BLOCK_SHAPES = ((2304, 768), (768, 768), (3072, 768), (768, 3072))  # c_attn, c_proj, c_fc, mlp.c_proj


def bench_update(size: int, bl: int, lr: float, repeats: int, model: str = "soft_bounds") -> dict:
    rng = np.random.default_rng(0)
    cfg = PulsedDeviceConfig(model=model, dw_min=0.001)
    devices = pulsed.sample_array(cfg, (size, size), rng)
    w = np.zeros((size, size), dtype=np.float32)
    w_torch = torch.zeros(size, size)
    xs = rng.uniform(-1, 1, (repeats + 1, size))
    ds = 0.5 * rng.standard_normal((repeats + 1, size))
    pulse_update.stochastic_update(w, devices, xs[0], ds[0], lr, bl, cfg.dw_min, 1)  # compile
    pulse_update.expected_update(w, devices, xs[0], ds[0], lr, bl, cfg.dw_min)
    stochastic, expected, fp, pulses, wall = [], [], [], [], []
    for k in range(1, repeats + 1):
        x_t, d_t = torch.from_numpy(xs[k].astype(np.float32)), torch.from_numpy(ds[k].astype(np.float32))
        w0, t0 = time.perf_counter(), time.thread_time()
        w_torch.addr_(d_t, x_t, alpha=-lr)
        w1, t1 = time.perf_counter(), time.thread_time()
        pulses.append(pulse_update.stochastic_update(w, devices, xs[k], ds[k], lr, bl, cfg.dw_min,
                                                     pulse_update.update_key(7, k)))
        w2, t2 = time.perf_counter(), time.thread_time()
        pulse_update.expected_update(w, devices, xs[k], ds[k], lr, bl, cfg.dw_min)
        t3 = time.thread_time()
        fp.append(t1 - t0)
        stochastic.append(t2 - t1)
        expected.append(t3 - t2)
        wall.append((w1 - w0, w2 - w1))
    ratios = np.array(stochastic) / np.array(fp)
    wall = np.array(wall)
    return {"wall_fp_us": 1e6 * np.median(wall[:, 0]), "wall_stochastic_us": 1e6 * np.median(wall[:, 1]),
            "fp_us": 1e6 * np.median(fp), "stochastic_us": 1e6 * np.median(stochastic),
            "expected_us": 1e6 * np.median(expected), "ratio_median": float(np.median(ratios)),
            "expected_ratio_median": float(np.median(np.array(expected) / np.array(fp))),
            "pulses_per_update": float(np.mean(pulses)),
            "device_pulses_per_s": float(np.mean(pulses) / np.median(stochastic))}


def bench_program(blocks: int) -> dict:
    hw = load_hw("hermes64")
    rng = np.random.default_rng(1)
    programming.program_weight(rng.standard_normal((64, 64)).astype(np.float32), hw.analog, 0)  # compile
    start, cpu_start = time.perf_counter(), time.process_time()
    tiles = weights = 0
    tile_time_us = 0.0
    for block in range(blocks):
        for k, (out_features, in_features) in enumerate(GPT2_BLOCK_SHAPES):
            weight = rng.standard_normal((out_features, in_features)).astype(np.float32)
            done = programming.program_weight(weight, hw.analog, seed=block * 10 + k)
            tiles += len(done.tiles)
            weights += weight.size
            tile_time_us += sum(t.time_us for t in done.tiles)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"blocks": blocks, "weights": weights, "tiles": tiles, "wall_s": elapsed, "cpu_s": cpu,
            "cpu_s_all_12_blocks": cpu * 12 / blocks,
            "wall_s_all_12_blocks": elapsed * 12 / blocks, "simulated_program_time_s": tile_time_us / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--bl", type=int, default=31)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--model", default="soft_bounds", choices=pulsed.PULSED_MODELS,
                        help="device model of the crossbar (default soft_bounds)")
    parser.add_argument("--blocks", type=int, default=1, help="GPT-2 blocks to program (1..12; 0 skips)")
    args = parser.parse_args()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    print(f"threads: numba {numba.get_num_threads()}, torch {torch.get_num_threads()}; thread CPU time")
    u = bench_update(args.size, args.bl, args.lr, args.repeats, args.model)
    print(f"{args.size}x{args.size} {args.model} update, BL {args.bl}, lr {args.lr}: "
          f"{u['pulses_per_update']:.3g} pulses ({u['pulses_per_update'] / args.size ** 2:.2f} per device)")
    print(f"  torch FP rank-1 (addr_)  {u['fp_us']:9.1f} us")
    print(f"  stochastic pulse update  {u['stochastic_us']:9.1f} us  median ratio {u['ratio_median']:.1f}x  "
          f"{u['device_pulses_per_s'] / 1e6:.1f} M device-pulses/s")
    print(f"  expected-value update    {u['expected_us']:9.1f} us  median ratio {u['expected_ratio_median']:.1f}x")
    print(f"  (wall clock: torch {u['wall_fp_us']:.1f} us, stochastic {u['wall_stochastic_us']:.1f} us)")
    if args.blocks > 0:
        p = bench_program(min(args.blocks, 12))
        note = "measured" if p["blocks"] == 12 else f"extrapolated x{12 / p['blocks']:g} from {p['blocks']} block(s)"
        print(f"program-and-verify, GPT-2 small blocks on hermes64: {p['blocks']} block(s), {p['weights'] / 1e6:.1f} M "
              f"weights, {p['tiles']} tiles in {p['wall_s']:.1f} s wall ({p['cpu_s']:.1f} s CPU); all 12 blocks "
              f"(85 M): {p['wall_s_all_12_blocks'] / 60:.1f} min wall, {p['cpu_s_all_12_blocks'] / 60:.1f} min CPU "
              f"({note}); simulated chip programming time "
              f"{p['simulated_program_time_s']:.2f} s for these tiles")


if __name__ == "__main__":
    main()
