"""Adapters as workload ops: a graph transformation the existing lowering costs unchanged.

For every Linear op (every token chunk) of an adapted projection P, the transformation
adds three ordinary digital ops: `P.lora_A` (Linear in -> r, fed by P's own inputs, so it
runs in parallel with P's analog MVM), `P.lora_B` (Linear r -> out) and an Add of P's
output and the adapter's (the `alpha / r` scale is folded into B). The adapter ops come
just before P in op order, so P is the Add's latest producer and the Add, split by P's
output pieces, runs on P's reduction cores like the ops after it. Consumers of P then
read the Add. The adapter Linears are extra projections placed digital on P's reduction
cores (A on the first, B split by output columns over all of them), so their weights are
resident in those cores' SRAM (they are tiny) and the Add sits where P's partial sums are
reduced. Nothing in simulator/engine changes.
"""
from __future__ import annotations

import dataclasses

from simulator.errors import UserError
from simulator.ir.graph import Graph, Op, OpKind, Projection
from simulator.mapping.mapping import DIGITAL, Mapping, Placement

ADAPTER_PARTS = ("lora_A", "lora_B")


def adapter_projection_name(projection: str, part: str) -> str:
    return f"{projection}.{part}"


def check_adapters_fit(graph: Graph, ranks: dict[str, int], source: str) -> None:
    """Every adapted projection must exist in the graph (by name); one-line error otherwise."""
    names = {p.name for p in graph.projections}
    for name in ranks:
        if name not in names:
            raise UserError(f"{source}: adapter {name!r} matches no projection of {graph.model} "
                            f"(e.g. {graph.projections[0].name!r}): adapters of another model?")


def with_adapters(graph: Graph, ranks: dict[str, int]) -> Graph:
    """`graph` with the adapter ops of each projection in `ranks` (projection -> rank)."""
    check_adapters_fit(graph, ranks, "adapters")
    by_name = {p.name: p for p in graph.projections}
    ops: list[Op] = []
    new_id: dict[int, int] = {}  # old op id -> id consumers now read (the Add for adapted Linears)

    def emit(op: Op, **changes) -> int:
        op_id = len(ops)
        ops.append(dataclasses.replace(op, id=op_id, **changes))
        return op_id

    for op in graph.ops:
        deps = tuple(sorted({new_id[d] for d in op.deps}))
        rank = ranks.get(op.projection) if op.kind == OpKind.LINEAR else None
        if rank is None:
            new_id[op.id] = emit(op, deps=deps)
            continue
        tag = op.name.rpartition("#")[2]
        projection = by_name[op.projection]
        # the adapter first, then P: the Add's latest producer is P, so the Add and every op
        # after it run where P is reduced (docs/timing_model.md, "Where ops run"), not on
        # the one core of lora_B
        low = emit(_linear(op, "lora_A", op.in_features, rank, tag), deps=deps)
        back = emit(_linear(op, "lora_B", rank, projection.out_features, tag), deps=(low,))
        base = emit(op, deps=deps)
        new_id[op.id] = emit(Op(id=0, name=f"{op.projection}.lora_add#{tag}", kind=OpKind.ADD,
                                tokens=op.tokens, elements=op.tokens * op.out_features,
                                elements_in=2 * op.tokens * op.out_features,
                                elements_out=op.tokens * op.out_features, layer=op.layer, chunk=op.chunk),
                             deps=(base, back))
    projections = []
    for p in graph.projections:
        projections.append(p)
        if p.name in ranks:
            projections += [Projection(adapter_projection_name(p.name, "lora_A"), p.in_features, ranks[p.name],
                                       False, p.layer),
                            Projection(adapter_projection_name(p.name, "lora_B"), ranks[p.name], p.out_features,
                                       False, p.layer)]
    meta = {**graph.meta, "adapters": dict(ranks)}
    return dataclasses.replace(graph, ops=tuple(ops), projections=tuple(projections), meta=meta)


def _linear(op: Op, part: str, in_features: int, out_features: int, tag: str) -> Op:
    return Op(id=0, name=f"{adapter_projection_name(op.projection, part)}#{tag}", kind=OpKind.LINEAR,
              tokens=op.tokens, projection=adapter_projection_name(op.projection, part),
              in_features=in_features, out_features=out_features, has_bias=False,
              macs=op.tokens * in_features * out_features, elements_in=op.tokens * in_features,
              elements_out=op.tokens * out_features, layer=op.layer, chunk=op.chunk)


def with_adapter_placements(mapping: Mapping, graph: Graph) -> Mapping:
    """`mapping` (of the graph without adapters) plus a digital placement of every adapter
    projection of `graph` on its base projection's reduction cores (A: cores[0]; B: all)."""
    base = {p.projection: p for p in mapping.placements}
    placements = []
    for projection in graph.projections:
        if projection.name in base:
            placements.append(base[projection.name])
            continue
        owner, part = projection.name.rsplit(".", 1)
        cores = base[owner].cores
        # A (in -> r) on the first reduction core; B (r -> out) split by output columns over
        # all of them, so each computes the columns it adds to its own part of P's output
        placements.append(Placement(projection.name, DIGITAL,
                                    cores=tuple(dict.fromkeys(cores)) if part == "lora_B" else (cores[0],)))
    return dataclasses.replace(mapping, placements=tuple(placements))
