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

    @property
    def cycle_ns(self) -> float:
        return 1.0 / self.clock_ghz


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
    # Faults, sampled once per chip realisation
    stuck_at_zero_frac: float = 0.0
    stuck_at_gmax_frac: float = 0.0


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
    program_time_per_tile_us: float = 0.0
    program_energy_per_tile_nj: float = 0.0
    device: DeviceConfig = field(default_factory=DeviceConfig)
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)


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
    static_power_mw: float = 0.0  # per core


@dataclass(frozen=True)
class InterconnectConfig:
    topology: str = "mesh"  # mesh | bus
    mesh_cols: int | None = None  # None: ceil(sqrt(nodes))
    link_bytes_per_cycle: float = 32.0
    hop_cycles: int = 1  # router + link traversal latency per hop
    energy_pj_per_byte_hop: float = 0.1


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
