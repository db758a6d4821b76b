"""Pulse updates of whole crossbars of pulsed devices (numba kernels).

The update that SGD asks for is dW = -lr d x^T (W is [out, in]: d over rows, x over
columns). On a crossbar it is done with stochastic pulse trains of bit length BL
(Gokmen & Vlasov 2016; aihwkit's PulseType.StochasticCompressed): column j fires in each
of the BL slots with probability p_j = min(A |x_j|, 1), row i with q_i = min(B |d_i|, 1),
and device (i, j) takes one pulse, in direction -sign(x_j d_i), per slot where both fire.
With A B = lr / (BL dw_min) the expected number of pulses is lr |x_j d_i| / dw_min, so
the expected move is lr |x_j d_i| q(w) / dw_min * s (= lr x_j d_i where q = 1 and
s = dw_min). Update management balances the two sides so that they saturate together:
A = sqrt(lr / (BL dw_min) * max|d| / max|x|), B = sqrt(lr / (BL dw_min) * max|x| / max|d|).

`expected_update` applies that expected number of pulses (truncation by p <= 1 included)
in one step with no cycle-to-cycle noise: the deterministic mean-field model.

Each coincidence is one device step, applied in order (pulse k sees the state left by
pulse k - 1). Cycle-to-cycle noise: the n pulses a device takes in one update each have a
relative std dw_min_std; their sum is added once per device and update, as one Gaussian
of variance dw_min_std^2 * sum_k step_k^2 (exact to first order in the step: a noisy
step changes the later steps' q(w) by O(dw_min^2)).

Randomness is counter-based: every slot bit and every device's noise is a hash of
(update key, stream, index), so results are the same for any thread count and each
update's key (from the caller's seed and update counter) fixes it completely. The normal
is a centred sum of four 16-bit uniforms from one hash (Irwin-Hall: exact mean and
variance, tails cut at 3.46 sigma) instead of a logarithm and a cosine.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from simulator.analog.pulsed import CONSTANT, EXP, LINEAR, POW, SOFT, PulsedArray, q_down_scalar, q_up_scalar
from simulator.analog.rng import mix64

MAX_BL = 64  # slots are bits of one uint64
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_TO_UNIT = 1.0 / 65536.0
_IRWIN_HALL_4_SCALE = math.sqrt(3.0)  # (sum of 4 U(0,1) - 2) * sqrt(3) has unit variance


@njit(cache=True, inline="always")
def _hash(key, stream, index):
    return mix64(key ^ mix64(np.uint64(stream) * _GOLDEN + np.uint64(index)))


@njit(cache=True, inline="always")
def unit_uniform(key, stream, index):
    """U[0, 1) from 53 bits of the hash of (key, stream, index)."""
    return (_hash(key, stream, index) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def approx_normal(key, stream, index):
    """Zero-mean, unit-variance Irwin-Hall(4) sample from one hash."""
    h = _hash(key, stream, index)
    total = 0.0
    for k in range(4):
        total += ((h >> np.uint64(16 * k)) & np.uint64(0xFFFF)) * _TO_UNIT
    return (total - 2.0 + 2.0 * _TO_UNIT) * _IRWIN_HALL_4_SCALE


@njit(cache=True, inline="always")
def popcount64(v):
    v = v - ((v >> np.uint64(1)) & np.uint64(0x5555555555555555))
    v = (v & np.uint64(0x3333333333333333)) + ((v >> np.uint64(2)) & np.uint64(0x3333333333333333))
    v = (v + (v >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (v * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True, inline="always")
def _update_scales(x, d, lr, bl, dw_min):
    """Update management: (A, B) with A B = lr / (BL dw_min), A max|x| = B max|d|."""
    x_max = 0.0
    for j in range(x.size):
        x_max = max(x_max, abs(x[j]))
    d_max = 0.0
    for i in range(d.size):
        d_max = max(d_max, abs(d[i]))
    if x_max == 0.0 or d_max == 0.0 or lr == 0.0:
        return 0.0, 0.0
    k = lr / (bl * dw_min)
    return math.sqrt(k * d_max / x_max), math.sqrt(k * x_max / d_max)


@njit(cache=True, inline="always")
def _train_masks(values, scale, bl, key, stream):
    """Bit t of mask j set when slot t of line j fires (probability min(scale |v_j|, 1))."""
    masks = np.zeros(values.size, dtype=np.uint64)
    for j in range(values.size):
        p = min(scale * abs(values[j]), 1.0)
        if p <= 0.0:
            continue
        m = np.uint64(0)
        for t in range(bl):
            if unit_uniform(key, stream, j * MAX_BL + t) < p:
                m |= np.uint64(1) << np.uint64(t)
        masks[j] = m
    return masks


@njit(cache=True, nogil=True, inline="always")
def _pulse_rounds(model, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq):
    """Pulses of a row: the up and the down devices each in rounds over a compacted list
    of those still owed pulses. Round k gives pulse k to each of them, so consecutive
    iterations touch independent devices (their chains overlap in the pipeline), each
    list evaluates one response only, and the work is the pulse count, not row length x
    the longest train. step_sq accumulates each device's squared steps."""
    owed = np.empty(v.size, dtype=np.int32)
    for direction in range(2):
        rising = direction == 0
        m = 0
        for j in range(v.size):
            owed[m] = j
            m += (counts[j] > 0) & (up[j] == rising)
        k = 0
        while m > 0:
            kept = 0
            for t in range(m):
                j = owed[t]
                a = v[j]
                if rising:
                    step = s_up[j] * q_up_scalar(model, a, w_min[j], w_max[j], params)
                else:
                    step = -s_down[j] * q_down_scalar(model, a, w_min[j], w_max[j], params)
                step_sq[j] += step * step
                v[j] = min(max(a + step, w_min[j]), w_max[j])
                owed[kept] = j
                kept += counts[j] > k + 1
            m = kept
            k += 1


@njit(cache=True, nogil=True)
def _row_pulses(model, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq):
    """_pulse_rounds with the model fixed at each call site, so its branches fold away."""
    if model == CONSTANT:
        _pulse_rounds(CONSTANT, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq)
    elif model == LINEAR:
        _pulse_rounds(LINEAR, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq)
    elif model == SOFT:
        _pulse_rounds(SOFT, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq)
    elif model == EXP:
        _pulse_rounds(EXP, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq)
    else:
        _pulse_rounds(POW, v, counts, up, s_up, s_down, w_min, w_max, params, rounds, step_sq)


@njit(cache=True, nogil=True, parallel=True)
def _stochastic_update(w, model, params, s_up, s_down, w_min, w_max, c2c, x, d, lr, bl, dw_min, key):
    a, b = _update_scales(x, d, lr, bl, dw_min)
    if a == 0.0:
        return 0
    x_masks = _train_masks(x, a, bl, key, 0)
    d_masks = _train_masks(d, b, bl, key, 1)
    x_pos = x > 0
    rows, cols = w.shape
    total = 0
    for i in prange(rows):
        d_mask = d_masks[i]
        if d_mask == 0:
            continue
        counts = np.empty(cols, dtype=np.int32)
        up = np.empty(cols, dtype=np.bool_)
        rounds = 0
        row_total = 0
        for j in range(cols):  # AND + popcount over the row
            counts[j] = popcount64(x_masks[j] & d_mask)
            up[j] = x_pos[j] != (d[i] > 0)  # dW = -lr d x: up when x d < 0
            rounds = max(rounds, counts[j])
            row_total += counts[j]
        step_sq = np.zeros(cols, dtype=np.float32)
        v = w[i]
        _row_pulses(model, v, counts, up, s_up[i], s_down[i], w_min[i], w_max[i], params, rounds, step_sq)
        if c2c > 0:
            for j in range(cols):
                if counts[j] > 0:
                    noisy = v[j] + c2c * math.sqrt(step_sq[j]) * approx_normal(key, 2, i * cols + j)
                    v[j] = min(max(noisy, w_min[i, j]), w_max[i, j])
        total += row_total
    return total


@njit(cache=True, nogil=True, parallel=True)
def _expected_update(w, model, params, s_up, s_down, w_min, w_max, x, d, lr, bl, dw_min):
    a, b = _update_scales(x, d, lr, bl, dw_min)
    if a == 0.0:
        return
    rows, cols = w.shape
    for i in prange(rows):
        q = min(b * abs(d[i]), 1.0)
        for j in range(cols):
            n = bl * min(a * abs(x[j]), 1.0) * q  # expected coincidences
            if n == 0.0:
                continue
            v = w[i, j]
            if (x[j] > 0) != (d[i] > 0):
                v += n * s_up[i, j] * q_up_scalar(model, v, w_min[i, j], w_max[i, j], params)
            else:
                v -= n * s_down[i, j] * q_down_scalar(model, v, w_min[i, j], w_max[i, j], params)
            w[i, j] = min(max(v, w_min[i, j]), w_max[i, j])


def stochastic_update(w: np.ndarray, devices: PulsedArray, x: np.ndarray, d: np.ndarray, lr: float,
                      bl: int, dw_min: float, key: int) -> int:
    """In place: one stochastic pulse-train update toward w - lr d x^T; returns the pulses applied.

    `dw_min` is the nominal step the pulse probabilities are designed for (the device's
    own steps vary around it); `key` (uint64) fixes every random bit of this update.
    """
    if not 1 <= bl <= MAX_BL:
        raise ValueError(f"bit length BL must be in 1..{MAX_BL}, got {bl}")
    return int(_stochastic_update(w, devices.model, devices.params, devices.scale_up, devices.scale_down,
                                  devices.w_min, devices.w_max, devices.dw_min_std,
                                  _vector(x), _vector(d), float(lr), int(bl), float(dw_min), np.uint64(key)))


def expected_update(w: np.ndarray, devices: PulsedArray, x: np.ndarray, d: np.ndarray, lr: float,
                    bl: int, dw_min: float) -> None:
    """In place: the expected move of `stochastic_update` (mean-field, no cycle noise)."""
    _expected_update(w, devices.model, devices.params, devices.scale_up, devices.scale_down,
                     devices.w_min, devices.w_max, _vector(x), _vector(d), float(lr), int(bl), float(dw_min))


def _vector(values) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.float64).reshape(-1)


_MASK64 = (1 << 64) - 1


def base_key(*words: int) -> int:
    """A 64-bit stream key from seed words (SeedSequence: stable across platforms)."""
    return int(np.random.SeedSequence(list(words)).generate_state(1, np.uint64)[0])


def update_key(stream_key: int, counter: int) -> int:
    """The key of update number `counter` of a stream: SplitMix64 of key + counter * golden."""
    z = (stream_key + counter * int(_GOLDEN)) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)
