"""Bad input of every kind is one clean line: hypothesis-generated and hand-picked cases.

Each case runs the CLI's `main()` in-process and asserts: exit code 2 (130 for an
interrupt), exactly one line on stderr that names the file, key or flag, no traceback,
and no file in the working folder created or changed. The tally printed at the end
(run pytest with -s to see it) counts tried / clean errors / tracebacks / files damaged.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from simulator.cli import main
from simulator.commands.common import MAX_SEEDS, MAX_TOKENS

TALLY = {"tried": 0, "clean errors": 0, "tracebacks": 0, "files damaged": 0}
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    print("\nfuzz tally: " + ", ".join(f"{key} {value}" for key, value in TALLY.items()))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def snapshot(folder: Path) -> dict:
    """Every file below `folder` (hidden ones too) with its type and content hash."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            if path.is_symlink():
                state[str(path)] = ("link", os.readlink(path))
            elif path.is_file():
                state[str(path)] = ("file", hashlib.sha1(path.read_bytes()).hexdigest())
            else:
                state[str(path)] = ("other", path.stat().st_mode)
    return state


def expect_clean_error(argv, folder: Path, names, capsys, code: int = 2) -> str:
    """Run `aimcsim argv`; assert one clean line naming every fragment in `names`."""
    before = snapshot(folder)
    capsys.readouterr()
    TALLY["tried"] += 1
    returned = main([str(a) for a in argv])
    err = capsys.readouterr().err
    damaged = snapshot(folder) != before
    TALLY["tracebacks"] += "Traceback" in err
    TALLY["files damaged"] += damaged
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert returned == code, (argv, err)
    assert len(lines) == 1, err
    assert lines[0].startswith("aimcsim: "), err
    for fragment in ([names] if isinstance(names, str) else names):
        assert str(fragment) in lines[0], (fragment, lines[0])
    assert not damaged, "a file in the working folder was created or changed"
    TALLY["clean errors"] += 1
    return lines[0]


def fresh_folder(workdir: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=workdir))


def _parses_to_dict(text) -> bool:
    try:
        return isinstance(yaml.safe_load(text), dict)
    except Exception:
        return False


# ---------------------------------------------------------------- hardware configs

NUMERIC_KEYS = {  # key -> a valid value (the bad one is generated)
    "system.clock_ghz": 1.0, "analog.tiles": 8, "analog.rows": 256, "analog.cols": 256,
    "analog.adc_bits": 8, "analog.static_power_mw": 1.0, "analog.cell_read_power_uw": 1.0,
    "analog.device.g_max_uS": 25.0, "analog.periphery.out_noise": 0.04,
    "digital.cores": 4, "digital.macs_per_cycle": 256, "digital.static_power_mw": 1.0,
    "interconnect.link_bytes_per_cycle": 32.0, "memory.dram_bandwidth_gb_s": 64.0,
}
ENUM_KEYS = ("analog.dac.encoding", "analog.device.model", "interconnect.topology")
BAD_NUMBERS = st.one_of(
    st.integers(max_value=-1), st.integers(min_value=10 ** 13),
    st.sampled_from([float("inf"), float("-inf"), float("nan"), 1e308, -1e308, 1e12 + 1.0, -0.5]),
    st.text(string.ascii_letters, min_size=1, max_size=8), st.lists(st.integers(), max_size=3),
    st.booleans(), st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=4),
                                   st.integers(), max_size=2))


def nested(dotted: str, value) -> dict:
    head, *rest = dotted.split(".")
    return {head: nested(".".join(rest), value) if rest else value}


def merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


@st.composite
def bad_hw_documents(draw):
    """A config with valid noise and exactly one fault; returns (text, fragment the error names)."""
    doc = {"analog": {}, "digital": {}}
    for key in draw(st.lists(st.sampled_from(sorted(NUMERIC_KEYS)), max_size=4, unique=True)):
        merge(doc, nested(key, NUMERIC_KEYS[key]))
    fault = draw(st.sampled_from(["number", "enum", "unknown_key", "missing", "section"]))
    if fault == "number":
        key = draw(st.sampled_from(sorted(NUMERIC_KEYS)))
        value = draw(BAD_NUMBERS)
        if key == "analog.adc_bits":
            assume(not (isinstance(value, int) and not isinstance(value, bool) and 2 <= value <= 16))
        merge(doc, nested(key, value))
        fragment = key if not isinstance(value, dict) else key
    elif fault == "enum":
        key = draw(st.sampled_from(ENUM_KEYS))
        merge(doc, nested(key, draw(st.text(string.ascii_letters, min_size=1, max_size=6))))
        fragment = key
    elif fault == "unknown_key":
        section = draw(st.sampled_from(["analog", "digital", "system", "memory"]))
        key = draw(st.text(string.ascii_lowercase + "_", min_size=1, max_size=10))
        assume(key not in ("tiles", "rows", "cols", "cores", "clock_ghz"))
        merge(doc, {section: {f"zz_{key}": 1}})
        fragment = f"{section}.zz_{key}"
    elif fault == "missing":
        doc.pop(draw(st.sampled_from(["analog", "digital"])))
        fragment = "missing required section"
    else:
        doc[draw(st.sampled_from(["analog", "digital", "memory"]))] = draw(
            st.one_of(st.integers(), st.text(string.ascii_letters, min_size=1, max_size=5)))
        fragment = "expected a section"
    flow = draw(st.booleans())
    return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True), fragment


@FUZZ
@given(case=bad_hw_documents())
def test_generated_hw_configs(workdir, capsys, case):
    text, fragment = case
    folder = fresh_folder(workdir)
    path = folder / "hw.yaml"
    path.write_text(text)
    expect_clean_error(["hw", path], folder, ["hw.yaml", fragment], capsys)


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8")),
                      st.text(max_size=50).map(lambda t: t.encode("utf-16"))))
def test_generated_garbage_hw_files(workdir, capsys, data):
    try:
        assume(not _parses_to_dict(data.decode("utf-8")))
    except UnicodeDecodeError:
        pass
    folder = fresh_folder(workdir)
    path = folder / "junk.yaml"
    path.write_bytes(data)
    expect_clean_error(["hw", path], folder, "junk.yaml", capsys)


# ---------------------------------------------------------------- CLI lines

INT_FLAGS = [("run", "--tokens", MAX_TOKENS), ("run", "--new-tokens", MAX_TOKENS), ("run", "--batch", 4096),
             ("run", "--chunk-tokens", MAX_TOKENS), ("run", "--seeds", MAX_SEEDS),
             ("accuracy", "--seeds", MAX_SEEDS), ("accuracy", "--max-tokens", MAX_TOKENS),
             ("profile", "--seeds", MAX_SEEDS), ("search", "--max-rounds", None),
             ("sweep", "--workers", 256), ("compare", "--batch", 4096)]


@st.composite
def bad_int_flags(draw):
    command, flag, maximum = draw(st.sampled_from(INT_FLAGS))
    value = draw(st.one_of(
        st.integers(max_value=0).map(str),
        st.integers(min_value=(maximum or 10 ** 9) + 1, max_value=10 ** 30).map(str) if maximum
        else st.integers(max_value=0).map(str),
        st.text(string.ascii_letters + ".,e", min_size=1, max_size=6),
        st.floats(allow_nan=True).map(repr)))
    try:
        ok = int(value) > 0 and (maximum is None or int(value) <= maximum)
    except ValueError:
        ok = False
    assume(not ok)
    extra = ["--hw", "tiny", "--out", "s.h5"] if command == "sweep" else \
        ["--hw", "tiny"] if command == "compare" else []
    return [command, *extra, f"{flag}={value}"], flag


@FUZZ
@given(case=bad_int_flags())
def test_generated_integer_flags_name_the_flag(workdir, capsys, case):
    argv, flag = case
    folder = fresh_folder(workdir)
    line = expect_clean_error(argv, folder, flag, capsys)
    assert "Traceback" not in line


SETTABLE = sorted(NUMERIC_KEYS) + list(ENUM_KEYS)


@FUZZ
@given(key=st.one_of(st.sampled_from(SETTABLE), st.text(string.ascii_lowercase + "._", min_size=1, max_size=12)),
       value=st.one_of(BAD_NUMBERS.map(lambda v: yaml.safe_dump(v, default_flow_style=True).strip()
                                       .removesuffix("...").strip()),
                       st.text(string.printable.replace("\n", "").replace("\r", ""), max_size=12)))
def test_generated_set_overrides(workdir, capsys, key, value):
    from simulator.errors import UserError
    from simulator.hw.loader import load_hw, parse_overrides
    try:
        load_hw("tiny", parse_overrides([f"{key}={value}"]))
        assume(False)  # happens to be a valid override
    except UserError:
        pass
    folder = fresh_folder(workdir)
    expect_clean_error(["hw", "tiny", "--set", f"{key}={value}"], folder, "--set", capsys)


@FUZZ
@given(text=st.text(string.ascii_letters + string.digits + " .,-", min_size=1, max_size=10))
def test_generated_drift_times_fail_before_any_work(workdir, capsys, monkeypatch, text):
    from simulator.commands.accuracy import parse_times
    from simulator.errors import UserError
    try:
        parse_times(text)
        assume(False)
    except UserError:
        pass
    monkeypatch.setattr("simulator.commands.run.simulate_workload", _must_not_run)
    folder = fresh_folder(workdir)
    expect_clean_error(["run", "--hw", "tiny", f"--t={text}"], folder, "--t", capsys)


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("the computation started before the input was checked")


# ---------------------------------------------------------------- mapping files

MAPPING_FAULTS = st.one_of(
    st.fixed_dictionaries({"program_rounds": st.one_of(st.integers(max_value=0), st.floats(allow_nan=False),
                                                       st.text(string.ascii_letters, min_size=1, max_size=5),
                                                       st.integers(min_value=10 ** 7))}),
    st.fixed_dictionaries({"default": st.text(string.ascii_letters, min_size=1, max_size=8)
                          .filter(lambda t: t not in ("analog", "digital"))}),
    st.fixed_dictionaries({"projections": st.dictionaries(
        st.sampled_from(["lm_head", "transformer.h.0.attn.c_attn"]),
        st.one_of(st.integers(), st.text(string.ascii_letters, max_size=6)
                  .filter(lambda t: t not in ("analog", "digital"))), min_size=1, max_size=2)}),
    st.fixed_dictionaries({"projections": st.dictionaries(
        st.text(string.ascii_lowercase + ".*", min_size=1, max_size=10)
        .filter(lambda t: "*" not in t or not t.strip("*.") == ""), st.just("analog"), min_size=1, max_size=2)}),
    st.dictionaries(st.text(string.ascii_lowercase, min_size=1, max_size=8)
                    .filter(lambda t: t not in ("strategy", "default", "projections",
                                                "program_rounds", "placements")),
                    st.integers(), min_size=1, max_size=1),
    st.fixed_dictionaries({"placements": st.one_of(st.integers(), st.lists(st.one_of(
        st.integers(), st.fixed_dictionaries({"projection": st.just("lm_head"),
                                              "target": st.text(string.ascii_letters, max_size=5)})),
        min_size=1, max_size=2))}),
    st.fixed_dictionaries({"strategy": st.one_of(st.integers(), st.lists(st.integers(), max_size=2))}),
)


@FUZZ
@given(document=MAPPING_FAULTS)
def test_generated_mapping_files(workdir, capsys, document):
    from simulator.errors import UserError
    from simulator.hw.loader import load_hw
    from simulator.mapping.place import map_workload
    from workloads.registry import build_graph
    folder = fresh_folder(workdir)
    path = folder / "map.yaml"
    path.write_text(yaml.safe_dump(document))
    try:  # a glob that happens to match, say `*`, makes a valid file
        map_workload(build_graph("gpt2", "prefill", seq=8), load_hw("tiny"), str(path))
        assume(False)
    except UserError:
        pass
    expect_clean_error(["run", "--hw", "tiny", "--workload", "gpt2", "--tokens", "8", "--no-accuracy",
                        "--mapping", path], folder, "map.yaml", capsys)


# ---------------------------------------------------------------- checkpoint folders

@FUZZ
@given(config=st.one_of(
    st.binary(max_size=60),
    st.dictionaries(st.sampled_from(["model_type", "n_layer", "n_embd", "n_head", "vocab_size"]),
                    st.one_of(st.integers(max_value=0), st.text(max_size=5), st.none()), max_size=4)
    .map(lambda d: json.dumps(d).encode()),
    st.sampled_from([b"[]", b"null", b"{\"model_type\": \"llama\"}", b"\xff\xfe{"])))
def test_generated_checkpoint_folders(workdir, capsys, config):
    folder = fresh_folder(workdir)
    checkpoint = folder / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_bytes(config)
    expect_clean_error(["run", "--hw", "tiny", "--workload", checkpoint, "--tokens", "8", "--no-accuracy"],
                       folder, "ckpt", capsys)


# ---------------------------------------------------------------- hand-picked: every case of the issue

HW_CASES = [
    (b"analog:\n  tiles: 4\n  rows: 8\n  tiles: 5\ndigital: {}\n", "duplicate key 'tiles' at lines 2 and 4"),
    ("analog: {}\ndigital: {}\n".encode("utf-16"), "UTF-16"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
    (b"\xc3\x28analog: {}\n", "not UTF-8"),
    (b"a: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nesting 5000 levels deep"),
    ("analog:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(5000)), "levels deep"),
    (b"analog:\n  tiles: 1e12\ndigital: {}\n", "analog.tiles"),
    (b"analog:\n  tiles: 1000000000000\ndigital: {}\n", "analog.tiles: expected a non-negative integer <= 65536"),
    (b"analog: {}\ndigital: {}\nsystem:\n  clock_ghz: 1e308\n", "system.clock_ghz: expected a positive number <= 100"),
    (b"analog:\n  static_power_mw: 1e308\ndigital: {}\n", "analog.static_power_mw"),
    (b"analog: {}\ndigital: {}\nmemory:\n  dram_latency_ns: .inf\n", "memory.dram_latency_ns"),
    (b"analog: {}\ndigital: {}\nsystem:\n  clock_ghz: .nan\n", "system.clock_ghz"),
]


@pytest.mark.parametrize("content, fragment", HW_CASES)
def test_hand_picked_hw_files(tmp_path, capsys, content, fragment):
    path = tmp_path / "hw.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    expect_clean_error(["hw", path], tmp_path, ["hw.yaml", fragment], capsys)


@pytest.mark.parametrize("overrides, fragment", [
    (["analog.tiles=1000000000000"], "--set analog.tiles: expected a non-negative integer <= 65536"),
    (["analog.tiles=1e12"], "--set analog.tiles"),
    (["system.clock_ghz=1e308"], "--set system.clock_ghz: expected a positive number <= 100"),
    (["analog.static_power_mw=1e308"], "--set analog.static_power_mw"),
    (["analog={a: 1, a: 2}"], "duplicate key 'a'"),
])
def test_hand_picked_overrides(tmp_path, capsys, overrides, fragment):
    argv = ["hw", "tiny"] + [part for item in overrides for part in ("--set", item)]
    expect_clean_error(argv, tmp_path, fragment, capsys)


@pytest.mark.parametrize("text", ["many", "-3", "0", "2.5"])
def test_program_rounds_without_placements(tmp_path, capsys, text):
    path = tmp_path / "m.yaml"
    path.write_text(f"program_rounds: {text}\nprojections:\n  lm_head: digital\n")
    expect_clean_error(["run", "--hw", "tiny", "--workload", "gpt2", "--tokens", "8", "--no-accuracy",
                        "--mapping", path], tmp_path, ["m.yaml", "program_rounds"], capsys)


def test_duplicate_keys_in_a_mapping_file(tmp_path, capsys):
    path = tmp_path / "m.yaml"
    path.write_text("projections:\n  lm_head: analog\n  lm_head: digital\n")
    expect_clean_error(["run", "--hw", "tiny", "--workload", "gpt2", "--tokens", "8", "--no-accuracy",
                        "--mapping", path], tmp_path, ["m.yaml", "duplicate key 'lm_head' at lines 2 and 3"],
                       capsys)


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--json", "{d}"], "--json"),
    (["run", "--trace", "{d}"], "--trace"),
    (["run", "--h5", "{d}"], "--h5"),
    (["accuracy", "--h5", "{d}"], "--h5"),
    (["compare", "--hw", "tiny", "--json", "{d}"], "--json"),
    (["hw", "tiny", "--json", "{d}"], "--json"),
    (["run", "--json", "{d}/missing/r.json"], "does not exist"),
    (["hw", "tiny", "--json", "{d}/missing/r.json"], "does not exist"),
    (["accuracy", "--h5", "{d}/missing/r.h5"], "does not exist"),
    (["run", "--json", "{d}/same.json", "--trace", "{d}/same.json"], "--json and --trace"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/x.json"], "--out"),
    (["profile", "--plot", "{d}/p.txt"], "--plot"),
    (["search", "--out", "{d}/m.json"], "--out"),
    (["run", "--seeds", "0"], "--seeds: expected a positive integer, got '0'"),
    (["run", "--t", "1x"], "--t"),
    (["accuracy", "--max-tokens", "1"], "--max-tokens: expected at least the 256-token evaluation window"),
    (["accuracy", "--max-tokens", "64"], "at least the 256-token evaluation window"),
    (["run", "--bogus"], "--bogus"),
    (["run", "--engine", "warp"], "--engine"),
])
def test_hand_picked_cli_lines_fail_before_any_work(tmp_path, capsys, monkeypatch, argv, fragment):
    monkeypatch.setattr("simulator.commands.run.simulate_workload", _must_not_run)
    monkeypatch.setattr("simulator.commands.compare.simulate_workload", _must_not_run)
    monkeypatch.setattr("simulator.accuracy.evaluate.evaluate_accuracy", _must_not_run)
    expect_clean_error([a.format(d=tmp_path) for a in argv], tmp_path, fragment, capsys)


@pytest.mark.parametrize("code, reason", [(errno.EROFS, "Read-only file system"),
                                          (errno.EPERM, "Operation not permitted"),
                                          (errno.EACCES, "Permission denied")])
def test_unwritable_folders_are_one_line(tmp_path, capsys, monkeypatch, code, reason):
    """A read-only file system or an immutable folder, as the OS reports them (root ignores
    chmod, so the refusal is simulated at os.open, where the folder probe writes)."""
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(tmp_path)) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr("simulator.commands.run.simulate_workload", _must_not_run)
    for argv, flag in ((["run", "--json", tmp_path / "r.json"], "--json"),
                       (["compare", "--hw", "tiny", "--json", tmp_path / "c.json"], "--json"),
                       (["accuracy", "--h5", tmp_path / "a.h5"], "--h5")):
        expect_clean_error(argv, tmp_path, [flag, reason], capsys)


def test_ctrl_c_is_quiet_everywhere(tmp_path, capsys, monkeypatch):
    def interrupt(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("simulator.commands.run.simulate_workload", interrupt)
    monkeypatch.setattr("simulator.commands.sweep.run_sweep", interrupt)
    expect_clean_error(["run", "--hw", "tiny", "--no-accuracy"], tmp_path, "interrupted", capsys, code=130)
    expect_clean_error(["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--local",
                        "--out", tmp_path / "s.h5"], tmp_path, "interrupted", capsys, code=130)


def test_running_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    def exhausted(*_args, **_kwargs):
        raise MemoryError

    monkeypatch.setattr("simulator.commands.run.simulate_workload", exhausted)
    # a run small enough for the up-front estimate, so the allocation itself fails
    expect_clean_error(["run", "--hw", "digital", "--workload", "gpt2", "--tokens", "8", "--no-accuracy"],
                       tmp_path, ["out of memory", "--tokens"], capsys)


# ---------------------------------------------------------------- hand-picked: every flag of every subcommand

ADAPT = ["adapt", "--out", "{d}/a.safetensors"]
EVERY_FLAG_CASES = [
    (ADAPT + ["--rank", "100000000"], "--rank"),
    (ADAPT + ["--rank", "1000"], "--rank: expected at most 128"),
    (ADAPT + ["--alpha", "nan"], "--alpha: expected a finite number > 0"),
    (ADAPT + ["--alpha", "inf"], "--alpha"),
    (ADAPT + ["--lr", "-1"], "--lr: expected a finite number > 0"),
    (ADAPT + ["--lr", "nan"], "--lr"),
    (ADAPT + ["--weight-sigma", "-0.1"], "--weight-sigma"),
    (ADAPT + ["--weight-sigma", "inf"], "--weight-sigma"),
    (ADAPT + ["--out-noise", "nan"], "--out-noise"),
    (ADAPT + ["--seq", "100000"], "--seq: gpt2-pydoc has a 256-token context"),
    (ADAPT + ["--batch", "100000000"], "--batch"),
    (ADAPT + ["--chips", "100000", "--mode", "specific"], "--chips"),
    (ADAPT + ["--steps", "10000000000000"], "--steps"),
    (ADAPT + ["--t-train", "1x"], "--t-train"),
    (ADAPT + ["--seed", "-5"], "--seed: expected an integer in 0.."),
    (ADAPT + ["--domain", "mars"], "--domain: expected one of pydoc, docstrings"),
    (ADAPT + ["--json", "{d}/a.safetensors"], "--out and --json"),
    (ADAPT + ["--json", "{d}/missing/x.json"], "does not exist"),
    (ADAPT + ["--json", "{d}/x.txt"], "--json"),
    (["adapt", "--out", "{d}"], "--out"),
    (["train", "--seeds", "100000000"], "--seeds"),
    (["train", "--epochs", "1000000000"], "--epochs"),
    (["train", "--lr", "nan"], "--lr"),
    (["train", "--lr", "-1"], "--lr"),
    (["train", "--transfer-lr", "inf"], "--transfer-lr"),
    (["train", "--gamma", "nan"], "--gamma"),
    (["train", "--read-noise", "-1"], "--read-noise"),
    (["train", "--bl", "1000000000"], "--bl"),
    (["train", "--transfer-every", "1000000000"], "--transfer-every"),
    (["program", "--seeds", "100000000", "--model", "gpt2-pydoc"], "--seeds"),
    (["program", "--max-tokens", "64", "--model", "gpt2-pydoc"], "--max-tokens: expected at least the 256-token"),
    (["program", "--max-tokens", "300", "--model", "gpt2-pydoc"], "--max-tokens: expected a multiple"),
    (["search", "--budget", "inf"], "--budget"),
    (["search", "--max-rounds", "100000000000"], "--max-rounds"),
    (["search", "--max-verifications", "10000000000000"], "--max-verifications"),
    (["search", "--pareto-budgets", "inf"], "--pareto-budgets"),
    (["search", "--tokens", "100000"], "n_positions is 256"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--max-tokens", "256"],
     "--max-tokens: only used with --accuracy"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--model", "gpt2-pydoc"],
     "--model: only used with --accuracy"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--workload", "gpt2-pydoc",
      "--tokens", "8", "--accuracy", "--max-tokens", "64"], "--max-tokens: expected at least the 256-token"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--workload", "gpt2-pydoc",
      "--tokens", "8", "--accuracy", "--max-tokens", "999936"], "--max-tokens: the held-out split has"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--tokens", "2000"],
     "n_positions is 1024"),
    (["sweep", "--hw", "tiny", "--set", "analog.tiles=4,8", "--out", "{d}/s.h5", "--accuracy", "--tokens", "8"],
     "shape-only"),
    (["accuracy", "--t", "99999999999y"], "--t: '99999999999y' is beyond"),
    (["run", "--hw", "tiny", "--workload", "gpt2", "--accuracy", "--tokens", "8"], "shape-only"),
    (["run", "--hw", "tiny", "--workload", "gpt2", "--phase", "decode", "--tokens", "1000", "--new-tokens", "100",
      "--no-accuracy"], "needs 1100 positions"),
    (["compare", "--hw", "tiny", "--tokens", "100000"], "n_positions is 1024"),
    (["hw", "tiny", "--set", "analog.tiles=.nan"], "--set analog.tiles"),
    (["hw", "tiny", "--set", "analog.tiles=[1,2]"], "--set analog.tiles"),
    (["run", "--hw", "tiny", "--no-accuracy", "--json", "{d}/file.txt/x.json"], "does not exist"),
    (["run", "--hw", "tiny", "--no-accuracy", "--h5", "{d}/loop/x.h5"], "does not exist"),
    (["run", "--hw", "tiny", "--no-accuracy", "--json", "{d}/loop.json"], "loop.json: is a loop of symbolic links"),
    (["run", "--hw", "tiny", "--no-accuracy", "--mapping", "{d}/file.txt"], "file.txt"),
]


def _fail_before_any_work(monkeypatch):
    monkeypatch.setattr("simulator.commands.run.simulate_workload", _must_not_run)
    monkeypatch.setattr("simulator.commands.compare.simulate_workload", _must_not_run)
    monkeypatch.setattr("simulator.commands.sweep.run_sweep", _must_not_run)
    monkeypatch.setattr("simulator.accuracy.evaluate.evaluate_accuracy", _must_not_run)
    monkeypatch.setattr("simulator.adapt.train.train", _must_not_run)
    monkeypatch.setattr("simulator.commands.train.train_grid", _must_not_run)
    monkeypatch.setattr("simulator.analysis.profile.make_probe", _must_not_run)


def _hostile_folder(folder: Path) -> None:
    """A file where a folder is expected and symlink loops, inside the test's own folder."""
    (folder / "file.txt").write_text("hi\n")
    os.symlink("loop", folder / "loop")
    os.symlink("loop.json", folder / "loop.json")


@pytest.mark.parametrize("argv, fragment", EVERY_FLAG_CASES)
def test_every_flag_fails_before_any_work(tmp_path, capsys, monkeypatch, argv, fragment):
    _fail_before_any_work(monkeypatch)
    _hostile_folder(tmp_path)
    expect_clean_error([a.format(d=tmp_path) for a in argv], tmp_path, fragment, capsys)


GIB = 1 << 30
MEMORY_CASES = [  # with 1 GiB available
    (["run", "--seeds", "1000"], "--seeds 1000"),
    (["profile", "--seeds", "1000", "--workers", "16"], ["--seeds 1000", "one chip realisation", "16 processes"]),
    (["search", "--seeds", "1000"], "--seeds 1000"),
    (["sweep", "--hw", "hermes64", "--set", "analog.adc_bits=6,8", "--out", "{d}/s.h5", "--workload", "gpt2-pydoc",
      "--tokens", "8", "--accuracy", "--seeds", "100", "--workers", "4"], ["--seeds 100", "4 at once"]),
    (["run", "--hw", "hermes64", "--workload", "gpt2", "--phase", "decode", "--tokens", "8", "--new-tokens", "1000",
      "--no-accuracy"], ["--new-tokens 1000", "decode steps"]),
    (["run", "--hw", "hermes64", "--workload", "gpt2", "--tokens", "1024", "--chunk-tokens", "1", "--no-accuracy"],
     ["--chunk-tokens 1", "1,024 chunks"]),
    (["compare", "--hw", "hermes64", "--workload", "gpt2", "--tokens", "1024", "--chunk-tokens", "1"],
     "--chunk-tokens 1"),
    (ADAPT + ["--batch", "4096"], ["--batch 4096", "training batch"]),
    (["accuracy", "--model", "{d}/big"], ["--model", "parameters (config.json)"]),
    (["run", "--hw", "digital", "--workload", "{d}/big", "--tokens", "8", "--accuracy"], ["--workload", "parameters"]),
    (["run", "--hw", "tiny", "--workload", "{d}/big", "--tokens", "8", "--accuracy"], ["--workload", "parameters"]),
    (["run", "--hw", "tiny", "--workload", "{d}/big", "--tokens", "8", "--no-accuracy"],
     ["crossbar blocks", "analog.rows", "tiny.yaml"]),
]


@pytest.mark.parametrize("argv, fragments", MEMORY_CASES)
def test_memory_is_estimated_before_allocating(tmp_path, capsys, monkeypatch, argv, fragments):
    """Sizes that would not fit are refused with the estimate, before any large allocation."""
    _fail_before_any_work(monkeypatch)
    monkeypatch.setattr("simulator.commands.memory.available_bytes", lambda: GIB)
    big = tmp_path / "big"  # a checkpoint whose config.json asks for trillions of parameters
    big.mkdir()
    config = json.loads(Path("workloads/data/gpt2-pydoc/config.json").read_text())
    (big / "config.json").write_text(json.dumps(dict(config, n_embd=65536, n_layer=96, n_head=64)))
    expect_clean_error([a.format(d=tmp_path) for a in argv], tmp_path, fragments, capsys)


@pytest.mark.parametrize("argv", [["accuracy", "--seeds", "1000"], ["profile", "--seeds", "3", "--local"]])
def test_seeds_are_grouped_and_refused_only_when_one_does_not_fit(tmp_path, capsys, monkeypatch, argv):
    """accuracy and profile measure seeds that do not fit at once in groups; with room for
    less than one chip realisation (100 MB for gpt2-pydoc's 84 MB) they refuse, before any work."""
    _fail_before_any_work(monkeypatch)
    monkeypatch.setattr("simulator.commands.memory.available_bytes", lambda: 100 * 1024 ** 2)
    expect_clean_error(argv, tmp_path, [f"--seeds {argv[2]}", "one chip realisation", "100.0 MiB is available"], capsys)


def test_memory_estimates_track_what_was_measured(monkeypatch):
    """The seeds estimate matches the measured 84 MB per chip realisation of gpt2-pydoc on
    hermes64 (peak RSS, seeds 1..48) within 15 %; short runs are never lowered to estimate."""
    from simulator.commands import memory
    from simulator.hw.loader import load_hw
    from simulator.mapping.resolve import analog_names, resolve_targets
    from workloads.registry import load_model
    names = analog_names(resolve_targets("gpt2-pydoc", load_hw("hermes64"), "all-analog"))
    seen = {}
    monkeypatch.setattr(memory, "check_fits", lambda needed, *_: seen.setdefault("bytes", needed))
    memory.check_seeds_memory(load_model("gpt2-pydoc"), names, 10)
    assert abs(seen["bytes"] / 10 / 84e6 - 1) < 0.15
    assert memory.timing_units("prefill", 128, 16, "auto") == (1, "--tokens")
    assert memory.timing_units("decode", 128, 16, None) == (16, "--new-tokens")
    assert memory.timing_units("prefill", 1024, 16, 4) == (256, "--chunk-tokens")


@pytest.mark.parametrize("cut", [0, 8, 1000])
def test_truncated_checkpoint_weights_are_one_line(tmp_path, capsys, monkeypatch, cut):
    _fail_before_any_work(monkeypatch)
    source = Path("workloads/data/gpt2-pydoc")
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_bytes((source / "config.json").read_bytes())
    (checkpoint / "model.safetensors").write_bytes((source / "model.safetensors").read_bytes()[:cut])
    expect_clean_error(["accuracy", "--model", checkpoint], tmp_path, ["model.safetensors", "cannot read weights"],
                       capsys)
