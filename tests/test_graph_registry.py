"""Workload registry: names and checkpoint folders -> configs, graphs and loaded models."""
import json
import sys
import types

import pytest

from simulator.errors import UserError
from workloads import registry

TINY_GPT2 = {"model_type": "gpt2", "vocab_size": 100, "n_positions": 32, "n_embd": 16,
             "n_layer": 2, "n_head": 2}


def checkpoint_folder(tmp_path, config, name="tiny-gpt2"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_named_workloads_give_their_family_and_shapes():
    assert registry.WORKLOAD_NAMES == ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl",
                                       "mobilebert", "bert-base", "gpt2-pydoc", "minilm")
    assert registry.model_config("gpt2-large")[0] == "gpt2"
    assert registry.model_config("gpt2-large")[1]["n_layer"] == 36
    assert registry.model_config("mobilebert")[0] == "mobilebert"
    assert registry.model_config("bert-base")[1]["hidden_size"] == 768


def test_build_graph_by_name_passes_the_run_shape():
    graph = registry.build_graph("gpt2", "decode", batch=2, seq=6, new_tokens=3)
    assert (graph.model, graph.phase, graph.batch, graph.tokens) == ("gpt2", "decode", 2, 6)
    assert graph.meta["new_tokens"] == 3
    encoder = registry.build_graph("bert-base", "encoder", seq=16, chunk_tokens=8)
    assert {op.chunk for op in encoder.ops} == {0, 1}


def test_checkpoint_folder_config_drives_the_graph(tmp_path):
    folder = checkpoint_folder(tmp_path, TINY_GPT2)
    assert registry.model_config(str(folder)) == ("gpt2", TINY_GPT2)
    graph = registry.build_graph(str(folder), "prefill", seq=8)
    assert graph.model == "tiny-gpt2" and len(graph.projections) == 9
    with pytest.raises(UserError, match=r"tiny-gpt2/config.json: prefill needs 33 positions"):
        registry.build_graph(str(folder), "prefill", seq=33)


def test_checkpoint_folder_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="model_type: expected one of gpt2, bert, mobilebert, got 'llama'"):
        registry.model_config(str(checkpoint_folder(tmp_path, {"model_type": "llama"}, "a")))
    broken = tmp_path / "b"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="b/config.json: cannot read JSON"):
        registry.model_config(str(broken))
    empty = tmp_path / "c"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        registry.model_config(str(empty))


def test_unknown_workload_lists_the_valid_names():
    with pytest.raises(UserError, match="unknown workload 'gpt3': expected one of gpt2, .*gpt2-pydoc"):
        registry.build_graph("gpt3", "prefill")


def test_embedded_default_reads_its_config_or_says_it_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "EMBEDDED_DIR", tmp_path / "gpt2-pydoc")
    with pytest.raises(UserError, match="embedded model gpt2-pydoc is missing"):
        registry.model_config("gpt2-pydoc")
    checkpoint_folder(tmp_path, TINY_GPT2, "gpt2-pydoc")
    assert registry.model_config("gpt2-pydoc") == ("gpt2", TINY_GPT2)
    assert registry.build_graph("gpt2-pydoc", "prefill", seq=4).model == "gpt2-pydoc"


def test_load_model_delegates_to_the_checkpoint_loader(tmp_path, monkeypatch):
    loaded = []
    fake = types.ModuleType("workloads.checkpoint")
    fake.load_checkpoint = lambda path, name=None: loaded.append((path, name)) or "model"
    monkeypatch.setitem(sys.modules, "workloads.checkpoint", fake)
    folder = checkpoint_folder(tmp_path, TINY_GPT2)
    assert registry.load_model(str(folder)) == "model"
    monkeypatch.setattr(registry, "EMBEDDED_DIR", folder)
    assert registry.load_model("gpt2-pydoc") == "model"
    assert loaded == [(folder, None), (folder, "gpt2-pydoc")]


def test_load_model_of_a_shape_only_name_says_weights_are_needed():
    with pytest.raises(UserError, match="shape-only name: accuracy needs weights.*checkpoint folder"):
        registry.load_model("gpt2-medium")
    with pytest.raises(UserError, match="unknown workload"):
        registry.load_model("no-such-model")
