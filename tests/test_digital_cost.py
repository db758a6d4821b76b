"""Digital and DRAM unit costs against hand-computed numbers."""
from simulator.digital import cost
from simulator.hw.schema import DigitalConfig, MemoryConfig
from simulator.memory.cost import dram_access_cost, dram_latency_cycles, dram_stream_cycles, ns_to_cycles

DIGITAL = DigitalConfig(macs_per_cycle=256, simd_lanes=32, exp_per_cycle=8.0, gelu_per_cycle=8.0,
                        layernorm_elems_per_cycle=16.0, weight_bytes=1, sram_kib=1024, sram_bytes_per_cycle=64.0,
                        mac_energy_pj=0.1, simd_op_energy_pj=0.05, special_function_energy_pj=0.5,
                        sram_energy_pj_per_byte=0.5)
MEMORY = MemoryConfig(dram_bandwidth_gb_s=64.0, dram_latency_ns=100.0, dram_energy_pj_per_byte=20.0)


def test_compute_bound_linear_streams_weights_from_sram():
    # 128 tokens x 256 in x 512 out: 16,777,216 MACs / 256 = 65,536 cycles; 128*512 bias adds / 32 = 2048
    cycles, energy = cost.linear_cost(DIGITAL, MEMORY, 1.0, 128, 256, 512, has_bias=True)
    assert cycles == 65536 + 2048
    assert energy == {"digital_mac": 16777216 * 0.1 + 65536 * 0.05, "sram": 131072 * 0.5}


def test_bandwidth_bound_linear_streams_weights_from_dram():
    # 1024 x 2048 weights = 2 MiB > 1 MiB SRAM: DRAM at 64 GB/s = 64 B/cycle -> 32,768 cycles,
    # compute is 1 token * 2,097,152 MACs / 256 = 8192 cycles, so bandwidth wins.
    assert not cost.weights_fit_sram(DIGITAL, 1024, 2048)
    cycles, energy = cost.linear_cost(DIGITAL, MEMORY, 1.0, 1, 1024, 2048, has_bias=False)
    assert cycles == 32768
    assert energy == {"digital_mac": 2097152 * 0.1, "dram": 2097152 * 20.0}


def test_dram_bandwidth_per_cycle_follows_the_clock():
    # at 2 GHz a cycle is 0.5 ns, so 64 GB/s is 32 B/cycle
    assert dram_stream_cycles(MEMORY, 2.0, 3200) == 100
    assert dram_access_cost(MEMORY, 1.0, 640) == (10, {"dram": 12800.0})


def test_ns_to_cycles_is_exact_for_representable_products():
    assert ns_to_cycles(100.0, 1.2) == 120  # 100 * 1.2 is 120.00000000000001 in floating point
    assert ns_to_cycles(133.3, 1.0) == 134
    assert dram_latency_cycles(MEMORY, 1.0) == 100


def test_softmax_pays_exponentials_then_simd_passes():
    # 1000 exps at 8/cycle = 125 cycles; 4 SIMD passes = 4000 ops at 32 lanes = 125 cycles
    cycles, energy = cost.softmax_cost(DIGITAL, 1000)
    assert cycles == 250
    assert energy == {"special_function": 500.0, "digital_mac": 200.0}


def test_elementwise_costs():
    assert cost.layernorm_cost(DIGITAL, 1600) == (100, {"special_function": 800.0})
    assert cost.gelu_cost(DIGITAL, 80) == (10, {"special_function": 40.0})
    assert cost.add_cost(DIGITAL, 33) == (2, {"digital_mac": 33 * 0.05})  # 33 ops need a second cycle
    assert cost.relu_cost(DIGITAL, 1) == (1, {"digital_mac": 0.05})
    assert cost.nonorm_cost(DIGITAL, 64) == (4, {"digital_mac": 128 * 0.05})
    assert cost.matmul_cost(DIGITAL, 512) == (2, {"digital_mac": 51.2})


def test_reduce_scales_each_row_block_and_adds_bias():
    # 4 tokens x 100 outputs x (3 row blocks + bias) = 1600 SIMD ops / 32 lanes = 50 cycles
    assert cost.reduce_cost(DIGITAL, 4, 100, 3, has_bias=True) == (50, {"digital_mac": 80.0})
    assert cost.reduce_cost(DIGITAL, 4, 100, 1, has_bias=False)[0] == 13
