"""GPT-2 timing graphs: projection names and shapes, MAC totals by hand, KV cache, token feedback."""
import pytest

from simulator.errors import UserError
from simulator.ir.graph import OpKind
from workloads.configs import NAMED_CONFIGS
from workloads.gpt2.graph import build_gpt2_graph
from workloads.graph_builder import causal_key_pairs, chunk_spans

GPT2 = NAMED_CONFIGS["gpt2"]
E, V, L = 768, 50257, 12


def by_name(graph, name):
    return next(op for op in graph.ops if op.name == name)


def test_gpt2_small_has_49_projections_with_hf_names_shapes_and_order():
    graph = build_gpt2_graph(GPT2, "prefill", seq=8)
    expected = []
    for i in range(12):
        expected += [(f"transformer.h.{i}.attn.c_attn", 768, 2304),
                     (f"transformer.h.{i}.attn.c_proj", 768, 768),
                     (f"transformer.h.{i}.mlp.c_fc", 768, 3072),
                     (f"transformer.h.{i}.mlp.c_proj", 3072, 768)]
    expected.append(("lm_head", 768, 50257))
    assert [(p.name, p.in_features, p.out_features) for p in graph.projections] == expected
    assert graph.projection("lm_head").has_bias is False
    assert graph.projection("transformer.h.3.mlp.c_fc").layer == 3


def test_larger_gpt2_sizes_by_name():
    medium = build_gpt2_graph(NAMED_CONFIGS["gpt2-medium"], "prefill", seq=4)
    assert len(medium.projections) == 4 * 24 + 1
    assert medium.projection("transformer.h.23.mlp.c_fc").out_features == 4 * 1024
    xl = build_gpt2_graph(NAMED_CONFIGS["gpt2-xl"], "prefill", seq=4)
    assert xl.projection("transformer.h.47.attn.c_attn").out_features == 3 * 1600


@pytest.mark.parametrize("chunk_tokens", [None, 32, 7])
def test_prefill_macs_match_the_hand_formula(chunk_tokens):
    batch, seq = 2, 64
    graph = build_gpt2_graph(GPT2, "prefill", batch=batch, seq=seq, chunk_tokens=chunk_tokens)
    linear_per_token = L * 12 * E * E + E * V  # 4 projections = 12 E^2 per layer, plus lm_head
    attention = L * 2 * batch * E * seq * (seq + 1) // 2  # QK^T and AV, causal
    assert graph.total_macs == batch * seq * linear_per_token + attention
    assert graph.tokens == batch * seq


def test_causal_key_pairs_by_hand():
    assert causal_key_pairs(0, 4) == 1 + 2 + 3 + 4
    assert causal_key_pairs(4, 8) == 5 + 6 + 7 + 8
    assert chunk_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_spans(10, None) == [(0, 10)]


def test_prefill_chunk_attends_to_its_own_and_earlier_chunks_only():
    graph = build_gpt2_graph(GPT2, "prefill", seq=12, chunk_tokens=4)
    qk = by_name(graph, "transformer.h.2.attn.qk#c1")
    c_attn = [by_name(graph, f"transformer.h.2.attn.c_attn#c{c}").id for c in range(3)]
    assert c_attn[0] in qk.deps and c_attn[1] in qk.deps and c_attn[2] not in qk.deps
    assert qk.macs == E * causal_key_pairs(4, 8)
    assert by_name(graph, "transformer.h.2.attn.softmax#c1").elements == 12 * causal_key_pairs(4, 8)
    write = by_name(graph, "transformer.h.2.attn.kv_write#c1")
    assert write.kind == OpKind.KV_WRITE and write.dram_elements == 4 * 2 * E
    assert not any(op.kind == OpKind.KV_READ for op in graph.ops)


def test_logits_last_computes_one_row_per_sequence():
    every = build_gpt2_graph(GPT2, "prefill", batch=3, seq=16, chunk_tokens=8)
    last = build_gpt2_graph(GPT2, "prefill", batch=3, seq=16, chunk_tokens=8, logits="last")
    heads = [op for op in last.ops if op.projection == "lm_head"]
    assert [(op.chunk, op.tokens, op.macs) for op in heads] == [(1, 3, 3 * E * V)]
    assert every.total_macs - last.total_macs == (3 * 16 - 3) * E * V
    with pytest.raises(UserError, match="logits"):
        build_gpt2_graph(GPT2, "prefill", logits="first")


def test_decode_cache_grows_one_position_per_step_with_token_feedback():
    batch, seq, steps = 2, 10, 4
    graph = build_gpt2_graph(GPT2, "decode", batch=batch, seq=seq, new_tokens=steps)
    assert graph.tokens == batch * steps
    for t in range(steps):
        read = by_name(graph, f"transformer.h.5.attn.kv_read#s{t}")
        assert read.dram_elements == batch * (seq + t) * 2 * E
        qk = by_name(graph, f"transformer.h.5.attn.qk#s{t}")
        assert qk.macs == batch * E * (seq + t + 1)
        assert by_name(graph, f"lm_head#s{t}").tokens == batch
        if t:
            embed = by_name(graph, f"transformer.wte+wpe#s{t}")
            assert embed.deps == (by_name(graph, f"lm_head#s{t - 1}").id,)
            assert by_name(graph, f"transformer.h.5.attn.kv_write#s{t - 1}").id in read.deps


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_ops_are_topological_with_unique_names(phase):
    graph = build_gpt2_graph(GPT2, phase, seq=9, new_tokens=3, chunk_tokens=4)
    assert [op.id for op in graph.ops] == list(range(len(graph.ops)))
    assert all(all(dep < op.id for dep in op.deps) for op in graph.ops)
    assert len({op.name for op in graph.ops}) == len(graph.ops)
    assert graph.meta["family"] == "gpt2" and graph.meta["seq"] == 9


def test_linear_op_costs_follow_from_its_shape():
    graph = build_gpt2_graph(GPT2, "prefill", batch=2, seq=5)
    c_fc = by_name(graph, "transformer.h.0.mlp.c_fc#c0")
    assert (c_fc.tokens, c_fc.macs, c_fc.elements_in, c_fc.elements_out) == (
        10, 10 * E * 3072, 10 * E, 10 * 3072)
    assert by_name(graph, "transformer.h.0.mlp.gelu#c0").elements == 10 * 3072
    assert by_name(graph, "transformer.wte+wpe#c0").dram_elements == 10 * 2 * E


@pytest.mark.parametrize("phase, kwargs, message", [
    ("encoder", {}, "GPT-2 phases are prefill, decode"),
    ("prefill", {"seq": 1025}, "n_positions is 1024"),
    ("decode", {"seq": 1020, "new_tokens": 5}, "needs 1025 positions"),
    ("prefill", {"chunk_tokens": 0}, "--chunk-tokens"),
    ("decode", {"new_tokens": -1}, "--new-tokens"),
])
def test_bad_phase_and_sizes_are_user_errors(phase, kwargs, message):
    with pytest.raises(UserError, match=message):
        build_gpt2_graph(GPT2, phase, **kwargs)


def test_bad_config_names_the_key():
    with pytest.raises(UserError, match="my/config.json: n_head"):
        build_gpt2_graph({**GPT2, "n_head": 0}, "prefill", source="my/config.json")
    with pytest.raises(UserError, match="divisible"):
        build_gpt2_graph({**GPT2, "n_head": 7}, "prefill")
