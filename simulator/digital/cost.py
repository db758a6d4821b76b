"""Cost of digital work on the cores: integer cycles and energy (pJ) by component.

Each function costs one unit of work on one core (a Linear on a core group is split
by the lowering into one column slice per core). Throughputs come from DigitalConfig;
a result is `(cycles >= 1, {component: pJ})` with components from ENERGY_COMPONENTS.
SIMD arithmetic (adds, scaling, reductions) is booked under `digital_mac`;
exponentials, GELU and normalisation elements under `special_function`.
SRAM and DRAM traffic (weights, activations) is charged by the lowering, which knows what
is resident where (simulator.engine.memory_plan); `linear_cost` keeps the per-projection
view for callers that cost one Linear alone.
"""
from __future__ import annotations

from simulator.hw.schema import DigitalConfig, MemoryConfig
from simulator.memory.cost import ceil_div, dram_stream_cycles

# SIMD passes per softmax element besides its exponential: max, subtract, sum, divide.
SOFTMAX_SIMD_OPS_PER_ELEMENT = 4
# NoNorm (MobileBERT) is an elementwise affine: one multiply and one add per element.
NONORM_SIMD_OPS_PER_ELEMENT = 2

Cost = tuple[int, dict[str, float]]


def simd_cost(digital: DigitalConfig, simd_ops: int) -> Cost:
    """Elementwise arithmetic at `simd_lanes` operations per cycle."""
    return ceil_div(simd_ops, digital.simd_lanes), {"digital_mac": simd_ops * digital.simd_op_energy_pj}


def add_cost(digital: DigitalConfig, elements: int) -> Cost:
    return simd_cost(digital, elements)


def relu_cost(digital: DigitalConfig, elements: int) -> Cost:
    return simd_cost(digital, elements)


def nonorm_cost(digital: DigitalConfig, elements: int) -> Cost:
    return simd_cost(digital, NONORM_SIMD_OPS_PER_ELEMENT * elements)


def gelu_cost(digital: DigitalConfig, elements: int) -> Cost:
    return (ceil_div(elements, digital.gelu_per_cycle),
            {"special_function": elements * digital.special_function_energy_pj})


def layernorm_cost(digital: DigitalConfig, elements: int) -> Cost:
    return (ceil_div(elements, digital.layernorm_elems_per_cycle),
            {"special_function": elements * digital.special_function_energy_pj})


def softmax_cost(digital: DigitalConfig, elements: int) -> Cost:
    """Exponentials and the SIMD passes run back to back on the core."""
    simd_ops = SOFTMAX_SIMD_OPS_PER_ELEMENT * elements
    cycles = ceil_div(elements, digital.exp_per_cycle) + ceil_div(simd_ops, digital.simd_lanes)
    return cycles, {"special_function": elements * digital.special_function_energy_pj,
                    "digital_mac": simd_ops * digital.simd_op_energy_pj}


def matmul_cost(digital: DigitalConfig, macs: int) -> Cost:
    """Activation x activation product: compute bound (operands are activations)."""
    return ceil_div(macs, digital.macs_per_cycle), {"digital_mac": macs * digital.mac_energy_pj}


def reduce_cost(digital: DigitalConfig, tokens: int, out_features: int, row_blocks: int,
                has_bias: bool) -> Cost:
    """Analog Linear epilogue: per output and token, one scale-and-accumulate per row block
    (undoing the input/weight scales while summing partial sums) plus one bias add."""
    return simd_cost(digital, tokens * out_features * (row_blocks + int(has_bias)))


def linear_compute_cost(digital: DigitalConfig, tokens: int, in_features: int, out_features: int,
                        has_bias: bool) -> Cost:
    """A Linear slice's arithmetic on one core: tokens*in*out MACs at `macs_per_cycle`, then
    the bias adds on the SIMD lanes (weights and activations are costed by the lowering)."""
    macs = tokens * in_features * out_features
    bias_ops = tokens * out_features if has_bias else 0
    cycles = ceil_div(macs, digital.macs_per_cycle) + (ceil_div(bias_ops, digital.simd_lanes) if bias_ops else 0)
    return cycles, {"digital_mac": macs * digital.mac_energy_pj + bias_ops * digital.simd_op_energy_pj}


def weights_fit_sram(digital: DigitalConfig, in_features: int, out_features: int) -> bool:
    """Whether one core's weight slice stays resident in its SRAM."""
    return in_features * out_features * digital.weight_bytes <= digital.sram_kib * 1024


def linear_cost(digital: DigitalConfig, memory: MemoryConfig, clock_ghz: float, tokens: int,
                in_features: int, out_features: int, has_bias: bool) -> Cost:
    """A Linear (or a column slice of it) on one core: max(compute, weight streaming).

    Compute: tokens*in*out MACs at `macs_per_cycle`, plus bias adds on the SIMD lanes.
    Streaming: in*out*weight_bytes from SRAM at `sram_bytes_per_cycle` when they fit
    `sram_kib`, else from DRAM at the channel bandwidth (energy per byte of the source).
    Compute and streaming overlap, so the slower one sets the cycles.
    """
    macs = tokens * in_features * out_features
    bias_ops = tokens * out_features if has_bias else 0
    compute_cycles = ceil_div(macs, digital.macs_per_cycle) + (ceil_div(bias_ops, digital.simd_lanes) if bias_ops else 0)
    weight_bytes = in_features * out_features * digital.weight_bytes
    energy = {"digital_mac": macs * digital.mac_energy_pj + bias_ops * digital.simd_op_energy_pj}
    if weights_fit_sram(digital, in_features, out_features):
        stream_cycles = ceil_div(weight_bytes, digital.sram_bytes_per_cycle)
        energy["sram"] = weight_bytes * digital.sram_energy_pj_per_byte
    else:
        stream_cycles = dram_stream_cycles(memory, clock_ghz, weight_bytes)
        energy["dram"] = weight_bytes * memory.dram_energy_pj_per_byte
    return max(compute_cycles, stream_cycles), energy
