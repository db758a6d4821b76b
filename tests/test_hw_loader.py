"""Loader: every class of bad input is one clear line; extends chains, overrides, ADC models."""
import textwrap

import pytest

from simulator.cli import main
from simulator.errors import UserError
from simulator.hw.loader import load_hw, parse_overrides
from simulator.hw.schema import HwConfig

MINIMAL = """\
analog:
  tiles: 4
digital:
  cores: 1
"""


def write(folder, name, text):
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in tmp_path so error messages show short relative paths."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def error_of(path_or_name, overrides=None) -> str:
    with pytest.raises(UserError) as info:
        load_hw(path_or_name, overrides)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_minimal_config_takes_schema_defaults_and_its_file_name(in_tmp):
    hw = load_hw(write(in_tmp, "mini.yaml", MINIMAL))
    assert isinstance(hw, HwConfig)
    assert (hw.name, hw.source, hw.analog.tiles, hw.analog.rows) == ("mini", "mini.yaml", 4, 256)
    assert hw.analog.device.g_max_uS == 25.0


def test_int_is_accepted_where_a_float_is_expected_and_becomes_float(in_tmp):
    hw = load_hw(write(in_tmp, "a.yaml", MINIMAL + "system:\n  clock_ghz: 2\n"))
    assert hw.system.clock_ghz == 2.0 and isinstance(hw.system.clock_ghz, float)


def test_exponent_floats_without_a_dot_are_numbers(in_tmp):
    hw = load_hw(write(in_tmp, "a.yaml", MINIMAL.replace("tiles: 4", "tiles: 4\n  device:\n    t_read_s: 5e-7")))
    assert hw.analog.device.t_read_s == 5e-7


@pytest.mark.parametrize("snippet, expected", [
    ("analog:\n  tiles: 4\n  adc_bits: eight\n", "a.yaml: analog.adc_bits: expected an integer in 2..16, got 'eight'"),
    ("analog:\n  adc_bits: 17\n", "a.yaml: analog.adc_bits: expected an integer in 2..16, got 17"),
    ("analog:\n  tiles: 2.5\n", "a.yaml: analog.tiles: expected a non-negative integer, got 2.5"),
    ("analog:\n  rows: 0\n", "a.yaml: analog.rows: expected a positive integer, got 0"),
    ("analog:\n  cell_read_power_uw: -1\n", "a.yaml: analog.cell_read_power_uw: expected a non-negative number, got -1"),
    ("analog:\n  allow_time_multiplexing: 1\n", "a.yaml: analog.allow_time_multiplexing: expected true or false, got 1"),
    ("analog:\n  tiles: true\n", "a.yaml: analog.tiles: expected a non-negative integer, got True"),
    ("analog:\n  dac:\n    encoding: thermometer\n", "a.yaml: analog.dac.encoding: expected one of pwm, bit_serial, multi_level, got 'thermometer'"),
    ("analog:\n  adc:\n    type: pipeline\n", "a.yaml: analog.adc.type: expected one of sar, flash, ramp, cco, got 'pipeline'"),
    ("analog:\n  device:\n    model: mram\n", "a.yaml: analog.device.model: expected one of pcm, gaussian, reram, ideal, got 'mram'"),
    ("analog:\n  device:\n    stuck_at_zero_frac: 1.5\n", "a.yaml: analog.device.stuck_at_zero_frac: expected a number in 0..1, got 1.5"),
    ("analog:\n  mvm_latency_ns: 0\n", "a.yaml: analog.mvm_latency_ns: expected a positive number or null, got 0"),
    ("analog:\n  clock_ghz: 1\n", "a.yaml: analog.clock_ghz: unknown key; valid keys: tiles, rows,"),
    ("analgo:\n  tiles: 1\n", "a.yaml: analgo: unknown key; valid keys: system, analog, digital, interconnect, memory, extends"),
    ("analog: 5\n", "a.yaml: analog: expected a section with keys tiles, rows,"),
    ("analog: {}\nsystem:\n  clock_ghz: .nan\n", "a.yaml: system.clock_ghz: expected a positive number, got nan"),
])
def test_bad_values_name_file_key_and_what_is_valid(in_tmp, snippet, expected):
    message = error_of(write(in_tmp, "a.yaml", snippet + "digital: {}\n"))
    assert message.startswith(expected)


def test_missing_required_section(in_tmp):
    message = error_of(write(in_tmp, "a.yaml", "analog:\n  tiles: 1\n"))
    assert message == "a.yaml: missing required section 'digital' (required: analog, digital)"


def test_yaml_syntax_error_names_the_line(in_tmp):
    message = error_of(write(in_tmp, "a.yaml", "analog:\n  tiles: 4\n digital: [\n"))
    assert message.startswith("a.yaml: YAML syntax error at line 3")


def test_top_level_must_be_a_mapping(in_tmp):
    assert error_of(write(in_tmp, "a.yaml", "- 1\n- 2\n")).startswith("a.yaml: expected a mapping of sections")


def test_missing_file_lists_presets(in_tmp):
    message = error_of("nowhere/x.yaml")
    assert message.startswith("nowhere/x.yaml: hardware config not found; presets: ")
    assert "hermes64" in message and "analog_fabric" in message


def test_extends_chain_deep_merges_and_errors_name_the_file_that_holds_the_value(in_tmp):
    write(in_tmp, "base.yaml", MINIMAL + "system:\n  clock_ghz: 2.0\n")
    (in_tmp / "sub").mkdir()
    write(in_tmp / "sub", "mid.yaml", "extends: ../base.yaml\nanalog:\n  rows: 128\n  device:\n    g_max_uS: 10\n")
    top = write(in_tmp, "top.yaml", "extends: sub/mid.yaml\nanalog:\n  cols: 64\n  device:\n    model: ideal\n")
    hw = load_hw(top)
    assert (hw.name, hw.system.clock_ghz, hw.analog.tiles, hw.analog.rows, hw.analog.cols) == ("top", 2.0, 4, 128, 64)
    assert (hw.analog.device.model, hw.analog.device.g_max_uS) == ("ideal", 10.0)
    write(in_tmp / "sub", "mid.yaml", "extends: ../base.yaml\nanalog:\n  rows: many\n")
    assert error_of(top).startswith("sub/mid.yaml: analog.rows: expected a positive integer")


def test_extends_a_preset_by_name(in_tmp):
    hw = load_hw(write(in_tmp, "mine.yaml", "extends: hermes64\nanalog:\n  tiles: 8\n"))
    assert (hw.analog.tiles, hw.analog.rows, hw.digital.cores) == (8, 256, 4)


def test_extends_cycle_is_detected(in_tmp):
    write(in_tmp, "a.yaml", "extends: b.yaml\n" + MINIMAL)
    write(in_tmp, "b.yaml", "extends: a.yaml\n")
    assert error_of("a.yaml") == "a.yaml: extends: cycle a.yaml -> b.yaml -> a.yaml"


def test_extends_missing_base(in_tmp):
    write(in_tmp, "a.yaml", "extends: nothere\n" + MINIMAL)
    assert error_of("a.yaml").startswith("a.yaml: extends: nothere: hardware config not found; presets:")


def test_env_folder_adds_presets(in_tmp, monkeypatch):
    (in_tmp / "mine").mkdir()
    write(in_tmp / "mine", "lab_chip.yaml", MINIMAL)
    monkeypatch.setenv("AIMCSIM_HWCONFIGS", str(in_tmp / "mine"))
    assert load_hw("lab_chip").analog.tiles == 4


def test_overrides_are_typed_validated_and_named_by_flag(in_tmp):
    overrides = parse_overrides(["analog.tiles=128", "analog.device.model=ideal", "system.clock_ghz=1.5",
                                 "analog.allow_time_multiplexing=false", "analog.mvm_latency_ns=null"])
    assert overrides == {"analog.tiles": 128, "analog.device.model": "ideal", "system.clock_ghz": 1.5,
                         "analog.allow_time_multiplexing": False, "analog.mvm_latency_ns": None}
    hw = load_hw("hermes64", overrides)
    assert (hw.analog.tiles, hw.analog.device.model, hw.system.clock_ghz) == (128, "ideal", 1.5)
    assert error_of("hermes64", {"analog.tiles": -1}) == "--set analog.tiles: expected a non-negative integer, got -1"
    assert error_of("hermes64", {"analog.tilez": 1}).startswith("--set analog.tilez: unknown key; valid keys: tiles,")
    assert error_of("hermes64", {"analog": 1}).startswith("--set analog: is a section; set one of its keys: tiles,")


def test_malformed_override():
    with pytest.raises(UserError, match=r"^--set analog.tiles: expected KEY=VALUE"):
        parse_overrides(["analog.tiles"])


@pytest.mark.parametrize("snippet, expected", [
    ("adc:\n    type: cco\n", "a.yaml: analog.adc.type: cco is timed by analog.adc.ns_per_lsb, which is not given"),
    ("adc:\n    ns_per_bit: 1.0\n", "a.yaml: analog.adc.ns_per_bit: analog.adc.type is not given, so it is flash, "
                                    "timed by analog.adc.conversion_ns, which is not given"),
    ("dac:\n    encoding: bit_serial\n    ns_per_step: 0.2\n",
     "a.yaml: analog.dac.encoding: bit_serial is timed by analog.dac.phase_ns, which is not given"),
    ("adc_conversion_ns: 8\n", "a.yaml: analog.adc_conversion_ns: no longer a key: use analog.adc.type with"),
    ("array_energy_pj: 100\n", "a.yaml: analog.array_energy_pj: no longer a key: use analog.cell_read_power_uw"),
])
def test_converter_without_its_per_unit_time_or_a_retired_key_is_one_line(in_tmp, snippet, expected):
    message = error_of(write(in_tmp, "a.yaml", MINIMAL.replace("tiles: 4", "tiles: 4\n  " + snippet.rstrip())))
    assert message.startswith(expected)


def test_parameters_of_other_types_may_stay_so_a_type_can_be_swept():
    hw = load_hw("hermes64", {"analog.adc.type": "sar", "analog.adc.ns_per_bit": 2.0})
    assert (hw.analog.adc.type, hw.analog.adc.ns_per_bit, hw.analog.adc.ns_per_lsb) == ("sar", 2.0, 0.3)
    assert error_of("hermes64", {"analog.adc.type": "sar"}).startswith(
        "--set analog.adc.type: sar is timed by analog.adc.ns_per_bit, which is not given")
    assert error_of("hermes64", {"analog.input_phase_ns": 1}).startswith(
        "--set analog.input_phase_ns: no longer a key: use analog.dac.ns_per_step (pwm)")


def test_loading_is_deterministic():
    assert load_hw("analog_fabric") == load_hw("analog_fabric")


@pytest.mark.parametrize("argv, expected", [
    (["hw", "tiny", "--set", "analog.adc_bits=eight"], "aimcsim: error: --set analog.adc_bits: expected an integer in 2..16, got 'eight'\n"),
    (["hw", "no_such_preset"], "aimcsim: error: no_such_preset: hardware config not found; presets: "),
    (["hw", "tiny", "--set", "oops"], "aimcsim: error: --set oops: expected KEY=VALUE"),
])
def test_cli_turns_bad_input_into_one_line_and_exit_code_2(capsys, argv, expected):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(expected)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
