"""The hardware configuration as frozen dataclasses: the one typed view of a YAML preset.

Every number carries its unit in its name. The YAML sections map one to one onto the
dataclasses below (`system`, `analog` with its `device` and `periphery` sub-sections,
`digital`, `interconnect`, `memory`); `simulator.hw.loader` builds and validates them.
Defaults are the widely used PCM / periphery defaults (see shared/REFERENCES.md), so a
preset only states what it changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SystemConfig:
    clock_ghz: float = 1.0  # one simulator cycle = 1 / clock_ghz ns
    # which ready task a busy resource serves next: fifo (earliest ready, then task id) |
    # sequence_first (earliest sequence of the batch first, where the graph records its sequences; else fifo)
    dispatch: str = "fifo"
    # tokens per prefill/encoder chunk when --chunk-tokens is auto (its default): 0 lets auto
    # choose within its task budget; N is the granularity this hardware streams tokens at
    chunk_tokens: int = 0

    @property
    def cycle_ns(self) -> float:
        return 1.0 / self.clock_ghz


@dataclass(frozen=True)
class PulsedDeviceConfig:
    """A device written by pulses (training, program-and-verify); formulas in
    simulator/analog/pulsed.py. Weights in device units, bounds w_min < w_max."""

    model: str = "soft_bounds"  # constant_step | linear_step | soft_bounds | exp_step | pow_step
    dw_min: float = 0.001  # step of one pulse where the response is 1 (the range centre)
    w_min: float = -1.0
    w_max: float = 1.0
    up_down: float = 0.0  # asymmetry: up steps dw_min (1 + up_down), down dw_min (1 - up_down)
    dw_min_dtod: float = 0.3  # device-to-device relative std of the step
    up_down_dtod: float = 0.01  # device-to-device std of up_down
    w_bound_dtod: float = 0.3  # device-to-device relative std of w_min and w_max
    dw_min_std: float = 0.3  # cycle-to-cycle relative std of each pulse's step
    gamma_up: float = 0.5  # linear_step slopes (1 = soft bounds)
    gamma_down: float = 0.5
    exp_a_up: float = 0.00081  # exp_step: q+ = 1 - A_up exp(gamma_up z), z = 2 a w / range + b
    exp_a_down: float = 0.36833
    exp_gamma_up: float = 12.44625
    exp_gamma_down: float = 12.78785
    exp_a: float = 0.244
    exp_b: float = 0.2425
    pow_gamma: float = 1.5  # pow_step exponent
    pow_up_down: float = 0.0  # pow_step exponent asymmetry


@dataclass(frozen=True)
class DeviceConfig:
    """Non-volatile device model behind each crossbar cell (differential pairs)."""

    model: str = "pcm"  # pcm | gaussian | reram | ideal
    g_max_uS: float = 25.0
    # PCM (aihwkit-style statistical model); each scale multiplies its published sigma/nu.
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0  # scales nu mean and spread; 0 disables drift
    read_noise_scale: float = 1.0  # scales accumulated 1/f read noise; 0 disables it
    t0_s: float = 20.0  # drift reference time after programming
    t_read_s: float = 250e-9  # read pulse duration for 1/f accumulation
    # Generic Gaussian device: sigma as a fraction of g_max (additive) or of |g| (proportional)
    gaussian_sigma: float = 0.0
    gaussian_kind: str = "additive"  # additive | proportional
    # ReRAM-like: lognormal programming spread, power-law relaxation with a fixed exponent
    reram_sigma: float = 0.05  # relative programming spread
    reram_relax_nu: float = 0.01  # conductance relaxation exponent (t / t0)^-nu
    # Write endurance: program cycles a device survives; None: not modelled. PCM ~1e8
    # (Burr et al., J. Vac. Sci. Technol. B 28, 223 (2010): 1e6-1e9 reported, ~1e8 typical)
    endurance_cycles: float | None = None
    # Faults, sampled once per chip realisation
    stuck_at_zero_frac: float = 0.0
    stuck_at_gmax_frac: float = 0.0
    pulsed: PulsedDeviceConfig = field(default_factory=PulsedDeviceConfig)


@dataclass(frozen=True)
class PeripheryConfig:
    """Tile I/O non-idealities, applied in DESIGN.md order."""

    inp_bound: float = 1.0  # DAC full scale after noise management
    out_bound: float = 12.0  # ADC full scale in normalised output units
    out_noise: float = 0.04  # Gaussian output noise per MVM, normalised units
    noise_management: str = "abs_max"  # abs_max | none
    bound_management: str = "none"  # iterative | none
    max_bound_iterations: int = 3
    weight_scaling: str = "per_tile"  # per_tile | per_column
    drift_compensation: str = "global"  # global | per_column | none
    read_noise_gemm: bool = False  # per-MVM read noise as a second GEMM


@dataclass(frozen=True)
class ProgrammingConfig:
    """How programming a tile is costed: `fixed` takes program_time_per_tile_us and
    program_energy_per_tile_nj as given; `verify` replaces them by the program-and-verify
    model's expected per-tile figures (simulator/analog/programming.py) on the pulsed
    device of analog.device.pulsed."""

    model: str = "fixed"  # fixed | verify
    tolerance: float = 0.02  # accept |G_read - G_target| <= tolerance * g_max
    max_iterations: int = 20  # pulse + verify rounds per device before giving up
    max_pulses_per_iteration: int = 32  # pulses of one round (burst sized to the error)
    pulse_ns: float = 50.0  # one programming pulse on a row
    verify_read_ns: float = 200.0  # one verify read of a row
    pulse_energy_pj: float = 10.0  # per device pulse
    verify_energy_pj: float = 0.5  # per device verify read
    read_noise: float = 0.005  # verify-read noise std, fraction of g_max
    usable_range: float = 0.8  # g_max sits this fraction of the way from w_min to w_max
    seed: int = 0  # seed of the expected-cost run on random targets


@dataclass(frozen=True)
class AdcConfig:
    """The column converter. Its type sets how conversion time follows `adc_bits`, its
    energy model how the energy per conversion does (simulator.analog.tile_cost)."""

    type: str = "flash"  # sar | flash | ramp | cco
    ns_per_bit: float = 0.0  # sar: one bit decision after another, adc_bits of them
    ns_per_lsb: float = 0.0  # ramp, cco: counts 2^adc_bits LSB periods
    conversion_ns: float = 0.0  # flash: all comparators at once, whatever the bits
    energy_model: str = "fixed"  # fixed | walden | survey | capacitive
    energy_pj: float = 0.0  # fixed: per conversion, whatever the bits
    fom_fj_per_step: float = 1.56e3 / 2 ** 8  # walden: fom * 2^adc_bits (ISAAC's 8-bit ADC)


@dataclass(frozen=True)
class DacConfig:
    """The row drivers. The encoding sets how the input window follows `dac_bits`."""

    encoding: str = "pwm"  # pwm | bit_serial | multi_level
    ns_per_step: float = 0.0  # pwm: one pulse of up to 2^dac_bits steps
    phase_ns: float = 0.0  # bit_serial: per bit (dac_bits phases); multi_level: the one phase
    energy_pj_per_row: float = 0.0  # per driven row per input phase (pwm: one pulse)


@dataclass(frozen=True)
class AnalogConfig:
    tiles: int = 0  # 0 means a purely digital system
    rows: int = 256  # inputs per tile
    cols: int = 256  # outputs per tile
    dac_bits: int = 8
    adc_bits: int = 8
    adcs_per_tile: int = 256  # columns share ADCs: ceil(cols / adcs_per_tile) conversion rounds
    adc: AdcConfig = field(default_factory=AdcConfig)
    dac: DacConfig = field(default_factory=DacConfig)
    # Timing: input window (dac) + integration + conversion rounds * conversion time (adc).
    integration_ns: float = 0.0  # after the input window; constant in rows (see tile_cost)
    mvm_latency_ns: float | None = None  # a measured total that replaces the composed latency
    # Energy per MVM from per-unit figures, for the rows x cols actually driven.
    cell_read_power_uw: float = 0.0  # per active cell while the input window lasts (uW * ns = fJ)
    periphery_energy_pj_per_col: float = 0.0  # per converted column: accumulate, scale, correct
    control_energy_pj: float = 0.0  # per MVM, whatever its size: sequencing, control
    static_power_mw: float = 0.0  # per tile, while the system runs
    # Weight (re)programming, used when a mapping time-multiplexes tiles
    allow_time_multiplexing: bool = False
    # with time multiplexing, what `all-analog` maps: reprogram_per_pass (every projection
    # that fits one round is analog; tiles are rewritten every round, every decode token)
    # or resident_subset (only what fits the tiles at once is analog, no reprogramming; the
    # rest runs digital)
    multiplexing: str = "reprogram_per_pass"  # reprogram_per_pass | resident_subset
    # partial sums of each group of this many consecutive column blocks are reduced on the
    # core nearest that group's tiles; 0: all column blocks of a projection on one core
    reduction_col_blocks: int = 1
    # balanced: each reduction group on the core of least (work already there + work x distance);
    # nearest: on the core nearest its tiles (cores may serve several groups);
    # exclusive: one core per group, none shared (a fully unrolled fabric; needs a mesh)
    reduction_cores: str = "balanced"
    program_time_per_tile_us: float = 0.0
    program_energy_per_tile_nj: float = 0.0
    device: DeviceConfig = field(default_factory=DeviceConfig)
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    programming: ProgrammingConfig = field(default_factory=ProgrammingConfig)


@dataclass(frozen=True)
class DigitalConfig:
    cores: int = 1
    macs_per_cycle: int = 256  # per core, for Linear and MatMul
    simd_lanes: int = 32  # elementwise ops per cycle per core (Add, scaling, reductions)
    exp_per_cycle: float = 8.0  # softmax exponentials per cycle per core
    gelu_per_cycle: float = 8.0
    layernorm_elems_per_cycle: float = 16.0
    activation_bytes: int = 1  # bytes per activation element moved / stored
    weight_bytes: int = 1  # bytes per weight of a digital Linear
    sram_kib: int = 1024  # per core; digital weights that fit stream from SRAM, else DRAM
    sram_bytes_per_cycle: float = 64.0  # per core
    mac_energy_pj: float = 0.1
    simd_op_energy_pj: float = 0.05
    special_function_energy_pj: float = 0.5  # per exp / GELU / normalisation element
    sram_energy_pj_per_byte: float = 0.5
    static_power_mw: float = 0.0  # per core (logic leakage), while the system runs
    sram_static_power_mw_per_mib: float = 0.0  # leakage of each core's SRAM, per MiB of sram_kib
    # split attention (by heads), LayerNorm (by rows) and elementwise ops (by the Linear's
    # output pieces) over the cores of the Linear they follow; false: each on one core
    split_ops: bool = True
    # the cores attention heads (and their KV cache) are split over: "reduction", the K/V
    # Linear's reduction cores; "per_head", those plus the nearest others, a core per head
    attention_cores: str = "per_head"

    @property
    def sram_static_power_mw(self) -> float:
        """Leakage of one core's SRAM, in mW: it scales with the capacity a sweep sets."""
        return self.sram_static_power_mw_per_mib * self.sram_kib / 1024.0


@dataclass(frozen=True)
class InterconnectConfig:
    topology: str = "mesh"  # mesh | bus
    mesh_cols: int | None = None  # None: ceil(sqrt(nodes))
    link_bytes_per_cycle: float = 32.0
    hop_cycles: int = 1  # router pipeline + link traversal per hop: the head's latency
    energy_pj_per_byte_hop: float = 0.1
    # cut_through: a hop may start hop_cycles after the previous hop started (the head
    # moves on while the body streams); store_and_forward: after the previous hop has
    # received a whole packet (packet_bytes) or, with packet_bytes 0, the whole message
    flow_control: str = "cut_through"  # cut_through | store_and_forward
    packet_bytes: int = 0  # store_and_forward packet size; 0: one packet per message


@dataclass(frozen=True)
class MemoryConfig:
    dram_bandwidth_gb_s: float = 64.0
    dram_latency_ns: float = 100.0
    dram_energy_pj_per_byte: float = 20.0


@dataclass(frozen=True)
class HwConfig:
    name: str = "unnamed"
    source: str = ""  # file the config came from, for error messages and reports
    system: SystemConfig = field(default_factory=SystemConfig)
    analog: AnalogConfig = field(default_factory=AnalogConfig)
    digital: DigitalConfig = field(default_factory=DigitalConfig)
    interconnect: InterconnectConfig = field(default_factory=InterconnectConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
