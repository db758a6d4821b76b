"""How much held-out text does the sensitivity profile need? Rank stability against the full split.

Measures every projection's analog-alone perplexity degradation at one drift time on the
whole held-out split of the embedded model (or a long prefix of it, `--max-tokens`), one window per eval batch, and keeps the NLL
per (window, seed). The profile of any prefix of k windows is then the same computation
cut at k (the noise of window w does not depend on the windows after it), so one pass
gives the ranking for every prefix length. Prints, per prefix, the Spearman rank
correlation of the analog-alone means with the reference text's, the overlap of the top 5,
and the largest |delta| change.

    python benchmarks/profile_tokens.py [--seeds 3] [--t 1y] [--max-tokens N] [--json F]
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch
from scipy import stats
from tqdm import tqdm

from simulator.accuracy.lm import lm_eval_set
from simulator.analysis.profile import LmSuffixProbe
from simulator.commands.accuracy import parse_duration_s
from simulator.hw.loader import load_hw
from workloads.registry import load_model

PREFIX_TOKENS = (256, 512, 1024, 2048, 4096, 8192, 16384)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hw", default="hermes64")
    parser.add_argument("--model", default="gpt2-pydoc")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--t", default="1y")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="the reference text: this prefix instead of the whole split")
    parser.add_argument("--json", help="write the per-prefix figures and the raw NLL sums")
    args = parser.parse_args()
    t_s = parse_duration_s(args.t)
    loaded = load_model(args.model)
    eval_set = lm_eval_set(loaded, max_tokens=args.max_tokens)
    window = eval_set.inputs.shape[1]
    probe = LmSuffixProbe(loaded.model, load_hw(args.hw), list(range(args.seeds)),
                          torch.from_numpy(eval_set.inputs), torch.from_numpy(eval_set.targets),
                          windows_per_batch=1)
    fp_nll = np.array([probe._nll_per_seed(inputs[0], targets, 0)[0]
                       for inputs, (_, targets) in zip(probe._block_inputs, probe._batches)])
    started = time.perf_counter()
    nll = np.stack([probe.nll_per_batch(frozenset({name}), t_s)  # [projection, window, seed]
                    for name in tqdm(probe.projections, desc="analog alone", file=sys.stderr)])
    elapsed_s = time.perf_counter() - started
    full = _deltas(nll, fp_nll, len(fp_nll), window)
    rows = []
    for tokens in [p for p in PREFIX_TOKENS if p < len(fp_nll) * window] + [len(fp_nll) * window]:
        deltas = _deltas(nll, fp_nll, tokens // window, window)
        top = len(set(np.argsort(-deltas)[:5]) & set(np.argsort(-full)[:5]))
        rows.append({"tokens": tokens, "spearman": float(stats.spearmanr(deltas, full).statistic),
                     "top5_overlap": top, "max_abs_change": float(np.abs(deltas - full).max()),
                     "top1": probe.projections[int(np.argmax(deltas))]})
    print(f"{args.model} on {args.hw}, analog alone at {args.t}, {args.seeds} seeds, "
          f"{len(probe.projections)} projections, reference text {len(fp_nll) * window} tokens "
          f"({elapsed_s:.0f} s)")
    print(f"{'tokens':>7} {'spearman':>9} {'top-5 shared':>13} {'max |change|':>13}  top-1")
    for row in rows:
        print(f"{row['tokens']:>7} {row['spearman']:>9.3f} {row['top5_overlap']:>13} "
              f"{row['max_abs_change']:>13.4f}  {row['top1']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "projections": list(probe.projections),
                       "window": window, "fp_nll": fp_nll.tolist(), "nll": nll.tolist()}, f)
    return 0


def _deltas(nll: np.ndarray, fp_nll: np.ndarray, windows: int, window: int) -> np.ndarray:
    """Mean over seeds of each projection's perplexity degradation on the first `windows`."""
    tokens = windows * window
    fp = np.exp(fp_nll[:windows].sum() / tokens)
    return (np.exp(nll[:, :windows].sum(axis=1) / tokens) - fp).mean(axis=1)


if __name__ == "__main__":
    sys.exit(main())
