"""Mapping YAML: glob precedence, round trips, and errors that name the file and key."""
import pytest

from simulator.errors import UserError
from simulator.hw.schema import AnalogConfig, DigitalConfig, HwConfig
from simulator.mapping.io import load_mapping, load_mapping_targets, save_mapping
from simulator.mapping.place import map_workload
from workloads.configs import NAMED_CONFIGS
from workloads.gpt2.graph import build_gpt2_graph

GRAPH = build_gpt2_graph(NAMED_CONFIGS["gpt2"], "prefill", seq=4)
NAMES = [p.name for p in GRAPH.projections]
HW = HwConfig(source="hwconfigs/test.yaml", digital=DigitalConfig(cores=2),
              analog=AnalogConfig(tiles=2000, rows=256, cols=256))


def write(tmp_path, text, name="mapping.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def analog_names(targets):
    return [n for n, t in targets.items() if t == "analog"]


def test_later_globs_override_earlier_and_exact_names_win(tmp_path):
    path = write(tmp_path, """
projections:
  transformer.h.0.mlp.c_fc: digital      # exact: wins although listed first
  "transformer.h.*.mlp.*": analog
  "transformer.h.1?.mlp.*": digital      # later glob overrides the earlier one
""")
    targets = load_mapping_targets(path, NAMES)
    assert list(targets) == NAMES
    assert analog_names(targets) == (["transformer.h.0.mlp.c_proj"] + [
        f"transformer.h.{i}.mlp.{s}" for i in range(1, 10) for s in ("c_fc", "c_proj")])


def test_default_applies_to_unmatched_projections(tmp_path):
    path = write(tmp_path, "default: analog\nprojections:\n  lm_head: digital\n")
    targets = load_mapping_targets(path, GRAPH.projections)
    assert analog_names(targets) == NAMES[:-1] and targets["lm_head"] == "digital"


@pytest.mark.parametrize("strategy, tiles, multiplex", [
    ("all-analog", 2000, False), ("all-digital", 0, False), ("all-analog", 700, True)])
def test_map_save_load_round_trips(tmp_path, strategy, tiles, multiplex):
    hw = HwConfig(source="hwconfigs/test.yaml", digital=DigitalConfig(cores=3),
                  analog=AnalogConfig(tiles=tiles, allow_time_multiplexing=multiplex))
    mapping = map_workload(GRAPH, hw, strategy)
    path = tmp_path / "saved.yaml"
    save_mapping(mapping, path)
    assert load_mapping(path, GRAPH, hw) == mapping
    assert map_workload(GRAPH, hw, str(path)) == mapping
    assert [p.name for p in tmp_path.iterdir()] == ["saved.yaml"]  # no temp file left behind


def test_a_file_without_placements_is_placed_for_the_hardware(tmp_path):
    path = write(tmp_path, "strategy: mlp-analog\nprojections:\n  '*.mlp.c_fc': analog\n")
    mapping = load_mapping(path, GRAPH, HW)
    assert mapping.strategy == "mlp-analog"
    assert mapping.placement("transformer.h.1.mlp.c_fc").tiles == tuple(range(36, 72))


@pytest.mark.parametrize("text, message", [
    ("projections:\n  transformer.h.0.mlp.cfc: analog\n",
     r"mapping.yaml: projections.transformer.h.0.mlp.cfc: unknown projection; "
     r"did you mean transformer.h.0.mlp.c_fc"),
    ("projections:\n  'h.*.mlp.c_fc': analog\n", "projections.h.*.mlp.c_fc: glob matches no projection"),
    ("projections:\n  lm_head: analogue\n",
     "projections.lm_head: expected analog or digital, got 'analogue'"),
    ("default: maybe\n", "mapping.yaml: default: expected analog or digital"),
    ("projections: [lm_head]\n", "projections: expected a mapping of name or glob"),
    ("projection:\n  lm_head: analog\n", "projection: unknown key; valid keys are strategy, default"),
    ("projections:\n  lm_head: analog\n bad: [\n", r"YAML syntax error at line \d+"),
    ("program_rounds: many\n", r"program_rounds: expected a positive integer <= \d+, got 'many'"),
    ("program_rounds: -3\n", "program_rounds: expected a positive integer"),
    ("program_rounds: 0\n", "program_rounds: expected a positive integer"),
    ("program_rounds: 2.5\n", "program_rounds: expected a positive integer"),
    ("strategy: [a]\n", "strategy: expected a label string"),
    ("projections:\n  lm_head: analog\n  lm_head: digital\n", "duplicate key 'lm_head' at lines 2 and 3"),
    ("- lm_head\n", "expected a mapping with keys"),
])
def test_bad_mapping_files_name_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message):
        load_mapping(path, GRAPH, HW)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="none.yaml: cannot read"):
        load_mapping_targets(tmp_path / "none.yaml", NAMES)
    with pytest.raises(UserError, match="does not exist"):
        save_mapping(map_workload(GRAPH, HW, "all-digital"), tmp_path / "no" / "m.yaml")


def placed_file(tmp_path, edit):
    """A saved all-analog mapping with one textual edit applied."""
    path = tmp_path / "placed.yaml"
    save_mapping(map_workload(GRAPH, HW, "all-analog"), path)
    old, new = edit
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("edit, message", [
    (("tiles: [0, 1, 2,", "tiles: [2000, 1, 2,"), "id 2000 is outside 0..1999"),
    (("tiles: [0, 1, 2,", "tiles: [27, 1, 2,"), "tile 27 is already used in program round 0"),
    (("row_blocks: 3", "row_blocks: 2"), "row_blocks x col_blocks must be 3 x 9"),
    (("program_rounds: 1", "program_rounds: 2"), "needs analog.allow_time_multiplexing"),
    (("cores: [0]", "cores: [5]"), "cores: expected ids in 0..1"),
    (("transformer.h.0.attn.c_attn: analog", "transformer.h.0.attn.c_attn: digital"),
     "c_attn is analog but projections says digital"),
    (("- projection: lm_head", "- projection: lm_hed"), "unknown \\['lm_hed'\\]"),
])
def test_explicit_placements_are_checked_against_graph_and_hardware(tmp_path, edit, message):
    with pytest.raises(UserError, match=message):
        load_mapping(placed_file(tmp_path, edit), GRAPH, HW)


def test_replicated_mapping_round_trips(tmp_path):
    mapping = map_workload(GRAPH, HW, {"lm_head": "analog"}, replicate=True)
    assert mapping.placement("lm_head").replicas == 2000 // 591
    save_mapping(mapping, tmp_path / "r.yaml")
    assert load_mapping(tmp_path / "r.yaml", GRAPH, HW) == mapping
