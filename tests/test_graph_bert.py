"""BERT / MobileBERT encoder graphs: HF module names, shapes, MACs by hand, bidirectional deps."""
import pytest
import torch
import transformers

from simulator.errors import UserError
from simulator.ir.graph import OpKind
from workloads.bert.graph import build_bert_graph, build_mobilebert_graph
from workloads.configs import NAMED_CONFIGS


def hf_linears(model) -> dict[str, tuple[int, int]]:
    """name -> (in, out) of every nn.Linear of an HF model, the pooler (a task head) left out."""
    return {name: (m.in_features, m.out_features) for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not name.startswith("pooler")}


def graph_linears(graph) -> dict[str, tuple[int, int]]:
    return {p.name: (p.in_features, p.out_features) for p in graph.projections}


@pytest.mark.parametrize("overrides", [{}, {"use_bottleneck": False, "num_feedforward_networks": 2,
                                            "normalization_type": "layer_norm"}])
def test_mobilebert_projections_match_hf_module_names_and_shapes(overrides):
    hf_config = transformers.MobileBertConfig(num_hidden_layers=2, vocab_size=64, **overrides)
    hf_model = transformers.MobileBertModel(hf_config, add_pooling_layer=False)
    graph = build_mobilebert_graph(hf_config.to_dict(), "encoder", seq=8)
    assert graph_linears(graph) == hf_linears(hf_model)


def test_bert_projections_match_hf_module_names_and_shapes():
    hf_config = transformers.BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4,
                                        intermediate_size=128, vocab_size=64)
    hf_model = transformers.BertModel(hf_config, add_pooling_layer=False)
    graph = build_bert_graph(hf_config.to_dict(), "encoder", seq=8)
    assert graph_linears(graph) == hf_linears(hf_model)


def test_mobilebert_projections_run_in_execution_order():
    graph = build_mobilebert_graph(NAMED_CONFIGS["mobilebert"], "encoder", seq=8)
    assert len(graph.projections) == 1 + 24 * 15
    layer0 = [p.name.removeprefix("encoder.layer.0.") for p in graph.projections[1:16]]
    assert layer0[:3] == ["bottleneck.input.dense", "bottleneck.attention.dense",
                          "attention.self.query"]
    assert layer0[-3:] == ["intermediate.dense", "output.dense", "output.bottleneck.dense"]


@pytest.mark.parametrize("chunk_tokens", [None, 48])
def test_mobilebert_macs_match_the_hand_formula(chunk_tokens):
    batch, seq = 2, 128
    graph = build_mobilebert_graph(NAMED_CONFIGS["mobilebert"], "encoder", batch=batch, seq=seq,
                                   chunk_tokens=chunk_tokens)
    per_layer = (2 * 512 * 128  # bottleneck.input, bottleneck.attention
                 + 2 * 128 * 128 + 512 * 128  # query, key (128 wide), value (512 wide)
                 + 128 * 128  # attention.output.dense
                 + 4 * 2 * 128 * 512  # 3 stacked FFNs + intermediate/output
                 + 128 * 512)  # output.bottleneck
    attention = 2 * batch * seq * seq * 128  # QK^T + AV over all 4 heads of width 32
    assert graph.total_macs == batch * seq * (24 * per_layer + 384 * 512) + 24 * attention
    assert sum(op.kind == OpKind.NONORM for op in graph.ops) > 0
    assert not any(op.kind == OpKind.LAYERNORM for op in graph.ops)


def test_bert_base_macs_match_the_hand_formula():
    batch, seq = 1, 128
    graph = build_bert_graph(NAMED_CONFIGS["bert-base"], "encoder", batch=batch, seq=seq)
    per_layer = 4 * 768 * 768 + 2 * 768 * 3072
    assert graph.total_macs == batch * seq * 12 * per_layer + 12 * 2 * batch * seq * seq * 768
    assert any(op.kind == OpKind.GELU for op in graph.ops)


def test_encoder_attention_waits_for_every_chunk():
    graph = build_mobilebert_graph(NAMED_CONFIGS["mobilebert"], "encoder", seq=12, chunk_tokens=4)
    ops = {op.name: op for op in graph.ops}
    qk = ops["encoder.layer.3.attention.self.qk#c0"]
    av = ops["encoder.layer.3.attention.self.av#c0"]
    for c in range(3):
        assert ops[f"encoder.layer.3.attention.self.key#c{c}"].id in qk.deps
        assert ops[f"encoder.layer.3.attention.self.value#c{c}"].id in av.deps
    assert ops["encoder.layer.3.attention.self.query#c1"].id not in qk.deps
    assert qk.macs == 4 * 12 * 128
    assert all(all(d < op.id for d in op.deps) for op in graph.ops)
    assert len(ops) == len(graph.ops)


@pytest.mark.parametrize("phase", ["prefill", "decode"])
def test_decoder_phases_are_errors_for_encoders(phase):
    with pytest.raises(UserError, match="only phase is 'encoder'"):
        build_bert_graph(NAMED_CONFIGS["bert-base"], phase)


def test_bad_encoder_configs_are_user_errors():
    with pytest.raises(UserError, match="seq 513 exceeds max_position_embeddings"):
        build_bert_graph(NAMED_CONFIGS["bert-base"], "encoder", seq=513)
    with pytest.raises(UserError, match="hidden_act"):
        build_bert_graph({**NAMED_CONFIGS["bert-base"], "hidden_act": "swish7"}, "encoder")
    with pytest.raises(UserError, match="normalization_type"):
        build_mobilebert_graph({**NAMED_CONFIGS["mobilebert"], "normalization_type": "rms"}, "encoder")
