"""Cost of programming a model onto analog tiles and of moving it to a time t.

GPT-2 small shapes with random weights (workloads.gpt2.model.GPT2), all 49 projections
(124 M weights) analog on 256x256 PCM tiles, one seed: `convert_to_analog` (the model
deep copy plus programming) and `set_time` (drift, one read-noise realisation, the
calibration reads and the compensation gains), medians over --repeats.

For the speed-up, the largest projection (lm_head, 50257 x 768) also runs through a
plain numpy version of the same physics (the formula functions of simulator.analog.device
on whole arrays, as before the fused kernels), interleaved with the fused path in the
same process, so the ratio comes from one run on one machine state.

    python benchmarks/analog_programming.py [--json F] [--repeats 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from analog_forward import analog_hw  # the same 256x256 PCM tiles as the forward benchmark
from simulator.analog import device as dev
from simulator.commands.common import write_json_atomic

ROWS, COLS = analog_hw().analog.rows, analog_hw().analog.cols
TIMES_S = (3600.0, 86400.0, 3600.0 * 24 * 30)
SEED = 0


def _timed(function, *args):
    """(function(*args), wall seconds it took)."""
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


# ---------------------------------------------------------------- numpy reference path

def numpy_program(weight, weight_max, device, rng):
    """Programming with whole-array numpy temporaries: (G+, G-, nu+, nu-) as [blocks, rows, out]."""
    out_features, in_features = weight.shape
    blocks = np.zeros((weight_max.shape[0] * ROWS, out_features), dtype=np.float32)
    blocks[:in_features] = weight.T
    normalised = blocks.reshape(-1, ROWS, out_features) / weight_max[:, None, :]
    state = []
    for target_uS in dev.target_conductances_uS(normalised, device.g_max_uS):
        gr = target_uS / device.g_max_uS
        sigma_uS = dev.pcm_programming_sigma_uS(gr, device.g_max_uS) * device.prog_noise_scale
        g_prog = np.maximum(target_uS + sigma_uS * rng.standard_normal(gr.shape, dtype=np.float32), 0.0)
        nu = device.drift_scale * (dev.pcm_drift_nu_mean(gr) + dev.pcm_drift_nu_std(gr)
                                   * rng.standard_normal(gr.shape, dtype=np.float32))
        state.append((g_prog.astype(np.float32), np.maximum(nu, 0.0).astype(np.float16)))
    return state


def numpy_weights_at(state, t_s, device, in_features, rng):
    """W(t) and the global compensation gains with whole-array numpy temporaries."""
    ratio = np.float32(dev.effective_time_s(t_s, device) / device.t0_s)
    noise_scale = device.read_noise_scale * dev.read_noise_time_factor(t_s, device)
    used = (np.arange(state[0][0].shape[0] * ROWS) < in_features).reshape(-1, ROWS, 1)
    now, reads = [], []
    for g_prog, nu in state:
        g_t = g_prog * np.power(ratio, -nu.astype(np.float32))
        sigma = np.abs(g_t) * dev.pcm_read_noise_q(g_prog / device.g_max_uS) * noise_scale
        g_t = np.maximum(g_t + sigma * rng.standard_normal(g_t.shape, dtype=np.float32), 0.0)
        now.append(g_t)
        reads.append(((g_prog * used).sum(axis=1, dtype=np.float64), (g_t * used).sum(axis=1, dtype=np.float64)))
    weights = (now[0] - now[1]) / np.float32(device.g_max_uS)
    reference = dev.CalibrationRead(reads[0][0], reads[1][0])
    at_t = dev.CalibrationRead(reads[0][1], reads[1][1])
    return weights, dev.compensation_factors(reference, at_t, COLS, "global")


def fused_weights_at(pair, device, in_features, rng, weights_out):
    """W(t) and the global compensation gains through the fused pass."""
    reference, now = dev.weights_at(pair, TIMES_S[0], device, in_features, rng, weights_out)
    return weights_out, dev.compensation_factors(reference, now, COLS, "global")


# ---------------------------------------------------------------- the runs

def lm_head_side_by_side(weight, device, repeats: int) -> dict:
    weight_max = dev.weight_max_abs(weight, ROWS, COLS, "per_tile")
    times = {key: [] for key in ("numpy_program", "fused_program", "numpy_set_time", "fused_set_time")}
    weights_out = np.empty((weight_max.shape[0], ROWS, weight.shape[0]), dtype=np.float32)
    for repeat in range(repeats + 1):  # the first round warms up (numba cache load, page faults)
        rng = np.random.default_rng(repeat)
        reference, numpy_program_s = _timed(numpy_program, weight, weight_max, device, rng)
        pair, fused_program_s = _timed(dev.program_pair, weight, weight_max, ROWS, device, rng)
        _, numpy_set_time_s = _timed(numpy_weights_at, reference, TIMES_S[0], device, weight.shape[1], rng)
        _, fused_set_time_s = _timed(fused_weights_at, pair, device, weight.shape[1], rng, weights_out)
        if repeat:
            for key, seconds in zip(times, (numpy_program_s, fused_program_s, numpy_set_time_s, fused_set_time_s)):
                times[key].append(seconds)
    medians = {key: statistics.median(values) for key, values in times.items()}
    medians["program_speedup"] = medians["numpy_program"] / medians["fused_program"]
    medians["set_time_speedup"] = medians["numpy_set_time"] / medians["fused_set_time"]
    return medians


def gpt2_small(model, repeats: int) -> dict:
    from simulator.analog.layer import convert_to_analog, set_time
    program_s, first_set_time_s, set_time_s = [], [], []
    for _ in range(repeats):
        analog, seconds = _timed(convert_to_analog, model, model.projection_names(), analog_hw(), [SEED])
        program_s.append(seconds)
        first_set_time_s.append(_timed(set_time, analog, TIMES_S[0])[1])
        set_time_s.extend(_timed(set_time, analog, t_s)[1] for t_s in TIMES_S[1:])
        del analog  # free 2 GiB of state before the next conversion
    return {"convert_to_analog_s": statistics.median(program_s),
            "first_set_time_s": statistics.median(first_set_time_s),
            "set_time_s": statistics.median(set_time_s)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads")
    args = parser.parse_args()

    import numba
    import torch

    from workloads.gpt2.model import GPT2, GPT2Config
    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    model = GPT2(GPT2Config()).eval()
    weights = sum(model.get_submodule(name).weight.numel() for name in model.projection_names())
    device = analog_hw().analog.device

    lm_head = lm_head_side_by_side(model.lm_head.weight.detach().numpy(), device, args.repeats)
    whole = gpt2_small(model, args.repeats)
    print(f"GPT-2 small, {len(model.projection_names())} projections, {weights / 1e6:.1f} M weights, "
          f"{ROWS}x{COLS} PCM tiles, 1 seed, {args.threads} threads, medians of {args.repeats}")
    print(f"  convert_to_analog (deep copy + programming) {whole['convert_to_analog_s']:7.2f} s")
    print(f"  set_time, first after programming          {whole['first_set_time_s']:7.2f} s")
    print(f"  set_time, later times                       {whole['set_time_s']:7.2f} s")
    print("lm_head (50257 x 768) side by side: numpy reference vs fused")
    print(f"  programming  {lm_head['numpy_program']:7.2f} s  {lm_head['fused_program']:7.2f} s"
          f"  {lm_head['program_speedup']:5.1f}x")
    print(f"  set_time     {lm_head['numpy_set_time']:7.2f} s  {lm_head['fused_set_time']:7.2f} s"
          f"  {lm_head['set_time_speedup']:5.1f}x")
    if args.json:
        write_json_atomic(args.json, {"threads": args.threads, "repeats": args.repeats, "weights": weights,
                                      "gpt2_small": whole, "lm_head": lm_head})


if __name__ == "__main__":
    main()
