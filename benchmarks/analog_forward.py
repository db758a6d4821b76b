"""Cost of the analog forward against the plain FP32 forward of the same model.

GPT-2 small shapes with random weights (workloads.gpt2.model.GPT2), batch 8 x 128
tokens, all 49 projections analog on 256x256 tiles, 8-bit DAC/ADC, PCM at t = 1 h with
global drift compensation, output noise 0.04; one chip realisation. The FP32 and
analog forwards run alternately in one process with the same torch and numba thread
counts; times are medians over --repeats after one warm-up each.

Memory: tracemalloc does not see torch's allocations, so each variant is built again in
its own child process, which reports (Linux /proc) the resident memory the model holds
after a warm-up forward (weights; for analog also the conductance state and the scratch
workspace) minus the RSS after imports, and the peak extra memory of one more forward:
it resets the kernel's peak-RSS mark (`/proc/self/clear_refs` = 5) and reads VmHWM
minus the RSS before the forward.

    python benchmarks/analog_forward.py [--json F] [--repeats 5] [--threads N]
"""
from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

from simulator.commands.common import write_json_atomic

BATCH, TOKENS = 8, 128
DRIFT_TIME_S = 3600.0
SEED = 0


def analog_hw():
    from simulator.hw.schema import AnalogConfig, HwConfig
    return HwConfig(name="bench-pcm-256", analog=AnalogConfig(rows=256, cols=256, dac_bits=8, adc_bits=8))


def build_models(threads: int, variants: tuple[str, ...]):
    """The FP32 model and/or its all-analog copy at t = 1 h, plus the input token ids."""
    import numba
    import torch

    from simulator.analog.layer import convert_to_analog, set_time
    from workloads.gpt2.model import GPT2, GPT2Config

    torch.set_num_threads(threads)
    numba.set_num_threads(threads)
    torch.manual_seed(SEED)
    fp32 = GPT2(GPT2Config()).eval()
    tokens = torch.randint(0, fp32.config.vocab_size, (BATCH, TOKENS))
    models = {}
    if "analog" in variants:
        analog = convert_to_analog(fp32, fp32.projection_names(), analog_hw(), [SEED])
        set_time(analog, DRIFT_TIME_S)
        models["analog"] = analog.eval()
    if "fp32" in variants:
        models["fp32"] = fp32
    return models, tokens


def time_forwards(threads: int, repeats: int) -> dict[str, list[float]]:
    import torch
    models, tokens = build_models(threads, ("fp32", "analog"))
    times = {name: [] for name in models}
    with torch.no_grad():
        for model in models.values():  # warm-up: numba compilation, allocator pools
            model(tokens)
        for _ in range(repeats):
            for name, model in models.items():  # alternate so machine load hits both alike
                start = time.perf_counter()
                model(tokens)
                times[name].append(time.perf_counter() - start)
    return times


def status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _memory_mib(variant: str, threads: int, result_queue) -> None:
    """Child process: (resident model memory, peak extra memory of a forward) in MiB."""
    import torch

    import simulator.analog.layer  # noqa: F401  (imports count as baseline, not model)
    import workloads.gpt2.model  # noqa: F401
    start_kib = status_kib("VmRSS")
    models, tokens = build_models(threads, (variant,))
    with torch.no_grad():
        models[variant](tokens)  # warm-up: compilation and the workspace are paid here
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # reset VmHWM to the current RSS
        before_kib = status_kib("VmRSS")
        models[variant](tokens)
        result_queue.put(((before_kib - start_kib) / 1024.0, (status_kib("VmHWM") - before_kib) / 1024.0))


def in_fresh_process(target, *args):
    """What `target(*args, result_queue)` puts on its queue, run in a spawned child so that
    its peak RSS (VmHWM) is its own, not this process's."""
    context = multiprocessing.get_context("spawn")
    result_queue = context.Queue()
    child = context.Process(target=target, args=(*args, result_queue))
    child.start()
    result = result_queue.get()
    child.join()
    return result


def memory_mib(variant: str, threads: int) -> tuple[float, float]:
    return in_fresh_process(_memory_mib, variant, threads)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    times = time_forwards(args.threads, args.repeats)
    fp32_s, analog_s = statistics.median(times["fp32"]), statistics.median(times["analog"])
    fp32_resident, fp32_peak = memory_mib("fp32", args.threads)
    analog_resident, analog_peak = memory_mib("analog", args.threads)
    figures = {
        "workload": f"gpt2-small shapes, random weights, batch {BATCH} x {TOKENS} tokens, 49 analog projections",
        "hw": "256x256 tiles, 8-bit DAC/ADC, PCM at t=1h, global drift compensation, out_noise 0.04",
        "threads": args.threads,
        "repeats": args.repeats,
        "fp32_forward_s": fp32_s,
        "analog_forward_s": analog_s,
        "ratio_to_fp32": analog_s / fp32_s,
        "fp32_forward_times_s": times["fp32"],
        "analog_forward_times_s": times["analog"],
        "fp32_resident_model_mib": fp32_resident,
        "analog_resident_model_mib": analog_resident,
        "fp32_peak_forward_extra_mib": fp32_peak,
        "analog_peak_forward_extra_mib": analog_peak,
    }
    for key, value in figures.items():
        if not isinstance(value, list):
            print(f"{key:30s} {value:.3f}" if isinstance(value, float) else f"{key:30s} {value}")
    if args.json:
        write_json_atomic(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
