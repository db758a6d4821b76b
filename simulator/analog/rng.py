"""Seeds and per-MVM noise pools for the analog model.

Two kinds of randomness, two tools:
* Static noise (programming, drift exponents, faults, the read-noise realisation at a
  time t) is drawn once per chip realisation with numpy Generators whose seeds derive
  stably from (seed, layer name, stream, ...), so any piece can be regenerated alone.
* Per-MVM noise (output noise, per-read read noise) is needed for every (row block,
  token, output) of every call: ~0.5 G values per GPT-2 forward, too many for a numpy
  draw each, and a numpy Generator cannot be shared by parallel loops without ordering
  effects. So each MVM call draws, per realisation, a pool of exact N(0, 1) samples
  (`MVM_POOL_SPREAD` + outputs long) and a 64-bit offset key; the fused kernel gives row
  (block, token) the pool slice starting at mix64(offset_key + row) % MVM_POOL_SPREAD.
  Every value is an exact Gaussian sample, outputs of one row never share a sample, two
  rows share their slice with probability 1 / MVM_POOL_SPREAD, and the result depends
  only on (seed, layer, call): not on thread count or on batching realisations.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit

from simulator.errors import UserError


class Stream(IntEnum):
    """Independent random streams of one layer realisation."""

    PROGRAMMING = 1  # programming noise, drift exponents, stuck-at faults
    READ_NOISE = 2  # accumulated 1/f read noise realisation at time t
    MVM = 3  # per-MVM output noise and per-read read noise


def check_seeds(seeds) -> tuple[int, ...]:
    """Seeds as a tuple of non-negative ints; anything else is a user error."""
    checked = tuple(seeds)
    if not checked or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool)
                              and s >= 0 for s in checked):
        raise UserError(f"seeds: expected a non-empty list of non-negative integers, got {seeds!r}")
    return tuple(int(s) for s in checked)


def time_words(t_s: float) -> tuple[int, int]:
    """The IEEE-754 bits of a time as two 32-bit words, to seed a stream by exact time."""
    bits = struct.unpack("<Q", struct.pack("<d", float(t_s)))[0]
    return bits & 0xFFFFFFFF, bits >> 32


def seed_sequence(seed: int, name: str, stream: Stream, *extra: int) -> np.random.SeedSequence:
    """The SeedSequence of one stream of one layer; stable across runs and platforms."""
    return np.random.SeedSequence([seed, zlib.crc32(name.encode("utf-8")), int(stream), *extra])


def generator(seed: int, name: str, stream: Stream, *extra: int) -> np.random.Generator:
    return np.random.default_rng(seed_sequence(seed, name, stream, *extra))


def stream_key(seed: int, name: str, stream: Stream, *extra: int) -> np.uint64:
    """The 64-bit key that seeds the per-MVM noise pools of one layer realisation."""
    return seed_sequence(seed, name, stream, *extra).generate_state(1, np.uint64)[0]


@njit(inline="always")
def mix64(z):
    """SplitMix64's finaliser: a bijective 64-bit mix, a good hash of consecutive counters."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always")
def pool_offset(offset_key, row, spread):
    """Start of row `row`'s slice in an MVM noise pool: a hash of (key, row) in [0, spread)."""
    return np.int64(mix64(offset_key + np.uint64(row)) % np.uint64(spread))


MVM_POOL_SPREAD = 1 << 16  # distinct slice starts per pool


@dataclass(frozen=True)
class MvmNoise:
    """The per-MVM random numbers of one call: one pool and offset key per realisation."""

    pools: np.ndarray  # [realisations, MVM_POOL_SPREAD + row length] float32, N(0, 1)
    offset_keys: np.ndarray  # [realisations] uint64


def mvm_noise(stream_keys: np.ndarray, call: int, iteration: int, sub_stream: int,
              row_length: int) -> MvmNoise:
    """Fresh pools for MVM call `call` (bound-management `iteration`) of every realisation."""
    pools = np.empty((stream_keys.size, MVM_POOL_SPREAD + row_length), dtype=np.float32)
    offset_keys = np.empty(stream_keys.size, dtype=np.uint64)
    for r, key in enumerate(stream_keys):
        rng = np.random.default_rng([int(key), call, iteration, sub_stream])
        offset_keys[r] = rng.integers(0, 2 ** 63, dtype=np.uint64)
        rng.standard_normal(out=pools[r], dtype=np.float32)
    return MvmNoise(pools, offset_keys)
