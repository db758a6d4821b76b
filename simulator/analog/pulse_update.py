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
pulse k - 1). For the affine responses (constant step, linear step, soft bounds: q = max(1 -
c w, 0)) n consecutive pulses have a closed form (a geometric series; _affine_pulses), so
each device is updated once, in float32 vector lanes; the exp and power steps apply their
pulses one by one, in masked rounds over the row with a float32 exp2 and log2 that
vectorise (_chained_row). Cycle-to-cycle noise: the n pulses a device takes in one update each
have a relative std dw_min_std; their sum is added once per device and update, as one
Gaussian of variance dw_min_std^2 * sum_k step_k^2 (exact to first order in the step: a
noisy step changes the later steps' q(w) by O(dw_min^2)).

Randomness is counter-based: the slot bits of a line and the noise of a row's devices
are 32-bit mixes of a Weyl counter (line * MAX_BL + slot, or column) keyed by a 64-bit
hash of (update key, stream, line or row), so results are the same for any thread count
and each update's key (from the caller's seed and update counter) fixes it completely.
The hot loops hash with 32-bit multiplies only: numba widens integer arithmetic to 64
bits, which halves the vector lanes and, without AVX-512, emulates each multiply, so the
32-bit operations are LLVM intrinsics (_uint32_op). The normal is a centred sum of the
four bytes of one hash (Irwin-Hall(4): exact mean and variance, tails cut at 3.45 sigma)
instead of a logarithm and a cosine.
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from simulator.analog.pulsed import CONSTANT, EXP, LINEAR, POW, SOFT, PulsedArray, q_down_scalar, q_up_scalar
from simulator.analog.rng import mix64

MAX_BL = 64  # slots are bits of two uint32 words
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_NORMAL_SCALE = math.sqrt(3.0) / 65536.0  # (sum of 4 U(0,1) - 2) * sqrt(3) has unit variance
_GOLDEN32 = np.uint32(0x9E3779B9)
_LOG2E = 1.0 / math.log(2.0)
_BYTE_NORMAL_SCALE = 1.0 / math.sqrt(4 * (256 ** 2 - 1) / 12)  # a sum of 4 uniform bytes has this 1/std


@njit(cache=True, inline="always")
def _hash(key, stream, index):
    return mix64(key ^ mix64(np.uint64(stream) * _GOLDEN + np.uint64(index)))


@njit(cache=True, inline="always")
def _centred_field_sum(h):
    """Sum of the four 16-bit fields of h minus its mean 131070: an integer in
    [-131070, 131070] (exact in float32)."""
    field = np.uint64(0xFFFF)
    total = (h & field) + ((h >> np.uint64(16)) & field) + ((h >> np.uint64(32)) & field) + (h >> np.uint64(48))
    return np.int64(total) - 131070


@njit(cache=True, inline="always")
def approx_normal(key, stream, index):
    """Zero-mean, unit-variance Irwin-Hall(4) sample from one hash: (sum of four 16-bit
    uniforms - their mean) * sqrt(3), summed as integers, converted once. For scalar
    draws (program-and-verify); the pulse update's vector loops use row_normal32."""
    return _centred_field_sum(_hash(key, stream, index)) * _NORMAL_SCALE


@njit(cache=True, inline="always")
def row_key(key, stream, row):
    """The 64-bit key of one row's stream of samples (see row_normal32)."""
    return _hash(key, stream, row)


def _uint32_op(build):
    """An intrinsic for one 32-bit operation on two uint32: numba widens integer arithmetic
    to 64 bits, which in vector code halves the lanes and emulates the multiplies."""
    @intrinsic
    def op(typingctx, a, b):
        if a != types.uint32 or b != types.uint32:
            return None
        return types.uint32(types.uint32, types.uint32), lambda context, builder, sig, args: build(builder, *args)
    return op


_add32 = _uint32_op(lambda builder, a, b: builder.add(a, b))
_mul32 = _uint32_op(lambda builder, a, b: builder.mul(a, b))
_and32 = _uint32_op(lambda builder, a, b: builder.and_(a, b))
_or32 = _uint32_op(lambda builder, a, b: builder.or_(a, b))
_xor32 = _uint32_op(lambda builder, a, b: builder.xor(a, b))
_shl32 = _uint32_op(lambda builder, a, b: builder.shl(a, b))
_shr32 = _uint32_op(lambda builder, a, b: builder.lshr(a, b))


@njit(cache=True, inline="always")
def mix32(z):
    """A bijective 32-bit mix of a uint32 (Wellons' lowbias32): 32-bit multiplies only, so it
    runs in 8 (AVX2) or 16 (AVX-512) vector lanes."""
    z = _mul32(_xor32(z, _shr32(z, np.uint32(16))), np.uint32(0x7FEB352D))
    z = _mul32(_xor32(z, _shr32(z, np.uint32(15))), np.uint32(0x846CA68B))
    return _xor32(z, _shr32(z, np.uint32(16)))


@njit(cache=True, inline="always")
def weyl32(key_lo, j):
    """Counter j (taken mod 2^32) of a stream: key_lo + j * golden (mod 2^32); a loop over j can
    step it by one addition instead."""
    return _add32(key_lo, _mul32(np.uint32(j), _GOLDEN32))


@njit(cache=True, inline="always")
def row_normal32(weyl, key_hi):
    """A row's sample at counter `weyl` (weyl32 of the low half of its row_key, key_hi the
    high half): an Irwin-Hall(4) approximate N(0, 1) in float32 from one 32-bit mix, the
    sum of the hash's four bytes minus their mean 510, over their std
    sqrt(4 (256^2 - 1) / 12). Exact mean and variance, tails cut at 3.45 sigma."""
    h = mix32(_xor32(weyl, key_hi))
    bytes_ = np.uint32(0x00FF00FF)
    pairs = _add32(_and32(h, bytes_), _and32(_shr32(h, np.uint32(8)), bytes_))  # two 16-bit sums
    total = _add32(_and32(pairs, np.uint32(0xFFFF)), _shr32(pairs, np.uint32(16)))
    return (np.float32(np.int32(total)) - np.float32(510.0)) * np.float32(_BYTE_NORMAL_SCALE)


@intrinsic
def popcount(typingctx, v):
    """Set bits of an unsigned integer (LLVM's ctpop: one vpopcnt where the CPU has it, a
    byte-table lookup in vector lanes on AVX2)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return v(v), codegen


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
def _key_halves(key):
    """The two uint32 halves of a 64-bit key."""
    return np.uint32(key & np.uint64(0xFFFFFFFF)), np.uint32(key >> np.uint64(32))


@njit(cache=True, inline="always")
def _train_words(values, scale, bl, key, stream):
    """words[w, j] bit t set when slot 32 w + t of line j fires (probability min(scale |v_j|,
    1)): the top 24 bits of a 32-bit mix of (stream key, j * MAX_BL + slot) against the
    probability in units of 2^-24. Slot-major and 32-bit, so the lines run in vector lanes."""
    key_lo, key_hi = _key_halves(_hash(key, stream, 0))
    threshold = np.empty(values.size, dtype=np.float32)
    for j in range(values.size):
        threshold[j] = min(scale * abs(values[j]), 1.0) * 16777216.0
    words = np.zeros((2, values.size), dtype=np.uint32)
    for t in range(bl):
        word, bit = words[t // 32], np.uint32(t % 32)
        for j in range(values.size):
            h = mix32(_xor32(weyl32(key_lo, j * MAX_BL + t), key_hi))
            fire = np.float32(np.int32(_shr32(h, np.uint32(8)))) < threshold[j]
            word[j] = _or32(word[j], _shl32(np.uint32(fire), bit))
    return words


@njit(cache=True, inline="always")
def _geometric(r, n):
    """(r^n, 1 + r + ... + r^(n-1)) for 0 <= n < 128 (uint32), by binary splitting of n: a block of
    2^b terms sums to prod_{c<b} (1 + r^(2^c)). No cancellation (unlike (1 - r^n)/(1 - r)
    for r near 1), so float32 suffices; unrolled and branch-free, so it vectorises."""
    one = np.float32(1.0)
    power, total = one, np.float32(0.0)
    block, square = one, r  # sum of the 2^b terms r^0 .. r^(2^b - 1); r^(2^b)
    for bit in (1, 2, 4, 8, 16, 32, 64):
        taken = _and32(n, np.uint32(bit)) != 0
        total = total + power * block if taken else total
        power = power * square if taken else power
        block = block * (one + square)
        square = square * square
    return power, total


@njit(cache=True, inline="always")
def _affine_pulses(a, n, s, c):
    """n consecutive pulses of step s (1 - c w), clipped at 0, from w = a (float32):
    (total move, sum of squared steps).

    One pulse maps w to w + s (1 - c w), i.e. (w - 1/c) to r (w - 1/c) with r = 1 - s c, so
    the k-th step is s q0 r^k (q0 = max(1 - c a, 0)): n pulses move s q0 (1 + ... + r^(n-1))
    with squares s^2 q0^2 (1 + ... + r^(2n-2)) = s^2 q0^2 G (1 + r^n) / (1 + r). When r < 0
    the first pulse overshoots 1/c, where q = 0 stops the train. The caller clips the end
    point to the bounds: the map is increasing (r >= 0), so that equals clipping after
    every pulse (when a bound is hit, the squares keep the unclipped steps)."""
    one = np.float32(1.0)
    r = one - s * c
    rn, total = _geometric(r, n)
    squares = total * (one + rn) / (one + r)
    overshoot = (r < 0) & (n > 0)
    total = one if overshoot else total
    squares = one if overshoot else squares
    step = s * max(one - c * a, np.float32(0.0))
    return step * total, step * step * squares


@njit(cache=True, inline="always")
def _affine_device(a, n, up, s_up, s_down, lo, hi, gamma_up, gamma_down, c2c, noise):
    """A device's state after its n pulses (float32; scalars only, so that the row loop
    stays free of array reference counting and vectorises). Both directions' constants
    are loaded before the selects between them, so these become blends, not gathers."""
    s = s_up if up else -s_down
    c = (gamma_up if up else gamma_down) / (hi if up else lo)
    move, squares = _affine_pulses(a, n, s, c)
    moved = min(max(a + move, lo), hi)
    noisy = min(max(moved + c2c * math.sqrt(squares) * noise, lo), hi)
    return a if n == 0 else (noisy if c2c > 0 else moved)


@njit(cache=True, inline="always")
def _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, d_hi,
                    key_lo, key_hi, count_mask):
    """The devices of one row (see _affine_row); every value in the loop is 32-bit, so it
    runs in as many lanes as float32 allows."""
    weyl = key_lo  # weyl32(key_lo, j)
    for j in range(v.size):
        n = _and32(_add32(popcount(_and32(x_lo[j], d_lo)), popcount(_and32(x_hi[j], d_hi))), count_mask)
        v[j] = _affine_device(v[j], n, x_up[j], s_up[j], s_down[j], w_min[j], w_max[j], gamma_up, gamma_down,
                              c2c, row_normal32(weyl, key_hi))
        weyl = _add32(weyl, _GOLDEN32)


@njit(cache=True, nogil=True, error_model="numpy")
def _affine_row(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, d_hi, row_key):
    """One row of an affine response, in vector lanes: x_up is True where a device goes up,
    (x_lo, x_hi) and (d_lo, d_hi) the column and row trains' slots 0-31 and 32-63, row_key
    the key of the row's cycle noise. No device takes more pulses than the row line
    fired, so for rows that fired < 4, < 8 or < 16 times the count is masked to 2, 3 or 4
    bits, which lets the compiler drop _geometric's unused squarings; a row with no slot above
    31 (every row when BL <= 32) drops the high words."""
    c2c = np.float32(c2c)
    key_lo, key_hi = _key_halves(row_key)
    fired = popcount(d_lo) + popcount(d_hi)
    low = np.uint32(0)  # d_hi when it is 0: a constant, so the compiler drops the high words
    if d_hi != 0:
        _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, d_hi,
                        key_lo, key_hi, np.uint32(127))
    elif fired < 4:
        _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, low,
                        key_lo, key_hi, np.uint32(3))
    elif fired < 8:
        _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, low,
                        key_lo, key_hi, np.uint32(7))
    elif fired < 16:
        _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, low,
                        key_lo, key_hi, np.uint32(15))
    else:
        _affine_devices(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x_up, x_lo, x_hi, d_lo, low,
                        key_lo, key_hi, np.uint32(63))


@njit(cache=True, nogil=True)
def _affine_rows(w, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x, d, x_words, d_words, key):
    """Constant step, linear step and soft bounds, q = max(1 - gamma w / bound, 0): every
    device's n pulses in closed form (_affine_pulses), one pass per row."""
    x_up, x_down = x < 0, x > 0  # up when x d < 0
    for i in range(w.shape[0]):
        d_lo, d_hi = d_words[0, i], d_words[1, i]
        if d_lo != 0 or d_hi != 0:
            _affine_row(w[i], gamma_up, gamma_down, s_up[i], s_down[i], w_min[i], w_max[i], c2c,
                        x_up if d[i] > 0 else x_down, x_words[0], x_words[1], d_lo, d_hi, row_key(key, 2, i))


@intrinsic
def _float_bits(typingctx, x):
    """The IEEE-754 bits of a float32 as an int32."""
    if x != types.float32:
        return None
    return types.int32(types.float32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(32))


@intrinsic
def _bits_float(typingctx, i):
    """The float32 with IEEE-754 bits i (int32)."""
    if i != types.int32:
        return None
    return types.float32(types.int32), lambda context, builder, sig, args: builder.bitcast(args[0], ir.FloatType())


@njit(cache=True, inline="always")
def _exp2(x):
    """2^x in float32 (relative error 1e-7; x below -126 gives 2^-126): exponent bits plus
    a degree-6 polynomial for 2^f, f in [0, 1), so a loop over it vectorises (np.exp does
    not, without a vector math library)."""
    x = min(max(x, np.float32(-126.0)), np.float32(126.0))
    whole = np.floor(x)
    f = x - whole
    p = np.float32(2.168343198718503e-04)
    for c in (1.2437946861609817e-03, 9.679985232651234e-03, 5.548214912414551e-02, 2.4023030698299408e-01,
              6.931468844413757e-01, 1.0):
        p = p * f + np.float32(c)
    return p * _bits_float(np.int32((np.int32(whole) + 127) << 23))


@njit(cache=True, inline="always")
def _log2(y):
    """log2(y) in float32 for normal y > 0 (absolute error 1e-7): the exponent bits plus
    u P(u), u = m - 1 for the mantissa m scaled into [sqrt(1/2), sqrt(2)), P of degree 8."""
    bits = _float_bits(y)
    exponent = np.float32(np.int32((bits >> 23) - 127))
    m = _bits_float(np.int32((bits & 0x7FFFFF) | 0x3F800000))  # in [1, 2)
    high = m > np.float32(1.4142135)
    m = m * np.float32(0.5) if high else m
    exponent = exponent + np.float32(1.0) if high else exponent
    u = m - np.float32(1.0)
    p = np.float32(0.12454018741846085)
    for c in (-0.20480720698833466, 0.21508777141571045, -0.23924550414085388, 0.28800514340400696,
              -0.3606933057308197, 0.48090794682502747, -0.721347451210022, 1.4426950216293335):
        p = p * u + np.float32(c)
    return exponent + u * p


@njit(cache=True, inline="always")
def _chained_q(model, w, rate, shift, factor):
    """q(w) of the exp step, max(1 - factor 2^(rate w + shift), 0), or of the power step,
    ((w - shift) rate)^factor (0 where the base is <= 0), from a device's constants for
    its direction (_chained_constants)."""
    if model == EXP:
        return max(np.float32(1.0) - factor * _exp2(rate * w + shift), np.float32(0.0))
    base = (w - shift) * rate
    q = _exp2(factor * _log2(max(base, np.float32(1e-30))))
    return q if base > 0 else np.float32(0.0)


@njit(cache=True, inline="always")
def _direction_constants(model, params):
    """For up and down pulses (see q_up, q_down): the numerator of _chained_q's rate (its
    denominator is w_max - w_min), the shift (the power step's is the bound instead) and
    the factor. The exp step's exp(g z), z = 2 a w / (w_max - w_min) + b, is
    2^(rate w + shift); the power step's base is 2 (w_max - w) / (w_max - w_min) up and
    2 (w - w_min) / (w_max - w_min) down."""
    if model == EXP:
        g_up, g_down = _LOG2E * params[2], -_LOG2E * params[3]
        return (np.float32(2.0 * params[4] * g_up), np.float32(2.0 * params[4] * g_down), np.float32(g_up * params[5]),
                np.float32(g_down * params[5]), np.float32(params[0]), np.float32(params[1]))
    return (np.float32(-2.0), np.float32(2.0), np.float32(0.0), np.float32(0.0),
            np.float32(params[0] * (1.0 + params[1])), np.float32(params[0] * (1.0 - params[1])))


@njit(cache=True, inline="always")
def _chained_row(model, params, v, counts, up, s_up, s_down, w_min, w_max, step_sq, rate, shift, factor, scale):
    """Pulses of a row of a non-affine response, applied in order per device: round k gives
    pulse k to every device owed more than k. Each round is one pass over the row, masked
    per device and with no libm call (_exp2, _log2), so it runs in vector lanes: a pass
    costs little more than its owed devices alone would in scalar code. rate, shift,
    factor and scale (the signed step) are scratch rows for each device's constants;
    step_sq gets each device's sum of squared steps."""
    rate_up, rate_down, shift_up, shift_down, factor_up, factor_down = _direction_constants(model, params)
    rounds = 0
    for j in range(v.size):
        rising, lo, hi = up[j], w_min[j], w_max[j]
        rate[j] = (rate_up if rising else rate_down) / (hi - lo)
        if model == POW:
            shift[j] = hi if rising else lo
        else:
            shift[j] = shift_up if rising else shift_down
        factor[j] = factor_up if rising else factor_down
        scale[j] = s_up[j] if rising else -s_down[j]
        step_sq[j] = 0.0
        rounds = max(rounds, counts[j])
    for k in range(rounds):
        for j in range(v.size):
            a = v[j]
            step = scale[j] * _chained_q(model, a, rate[j], shift[j], factor[j])
            owed = counts[j] > k
            step_sq[j] += step * step if owed else np.float32(0.0)
            v[j] = min(max(a + step, w_min[j]), w_max[j]) if owed else a


@njit(cache=True, nogil=True, error_model="numpy")
def _chained_rows(w, model, params, s_up, s_down, w_min, w_max, c2c, x, d, x_words, d_words, key):
    """Exp step and power step: each device's pulses applied one after another."""
    c2c = np.float32(c2c)
    x_up, x_down = x < 0, x > 0  # up when x d < 0
    cols = w.shape[1]
    counts, step_sq = np.empty(cols, dtype=np.int32), np.empty(cols, dtype=np.float32)
    rate, shift = np.empty(cols, dtype=np.float32), np.empty(cols, dtype=np.float32)
    factor, scale = np.empty(cols, dtype=np.float32), np.empty(cols, dtype=np.float32)
    for i in range(w.shape[0]):
        d_lo, d_hi = d_words[0, i], d_words[1, i]
        if d_lo == 0 and d_hi == 0:
            continue
        for j in range(cols):
            counts[j] = np.int32(_add32(popcount(_and32(x_words[0, j], d_lo)), popcount(_and32(x_words[1, j], d_hi))))
        up = x_up if d[i] > 0 else x_down
        v = w[i]
        if model == EXP:
            _chained_row(EXP, params, v, counts, up, s_up[i], s_down[i], w_min[i], w_max[i], step_sq, rate, shift,
                         factor, scale)
        else:
            _chained_row(POW, params, v, counts, up, s_up[i], s_down[i], w_min[i], w_max[i], step_sq, rate, shift,
                         factor, scale)
        if c2c > 0:
            key_lo, key_hi = _key_halves(row_key(key, 2, i))
            lo, hi = w_min[i], w_max[i]
            for j in range(cols):
                noisy = min(max(v[j] + c2c * math.sqrt(step_sq[j]) * row_normal32(weyl32(key_lo, j), key_hi),
                                lo[j]), hi[j])
                v[j] = noisy if counts[j] > 0 else v[j]


@njit(cache=True, inline="always")
def _affine_gammas(model, params):
    """(gamma_up, gamma_down) of an affine response q = max(1 - gamma w / bound, 0)."""
    if model == CONSTANT:
        return np.float32(0.0), np.float32(0.0)
    if model == SOFT:
        return np.float32(1.0), np.float32(1.0)
    return np.float32(params[0]), np.float32(params[1])


@njit(cache=True, inline="always")
def _coincidences(x_words, d_words, bl):
    """Pulses of an update: sum over slots of (rows firing) x (columns firing) in it."""
    total = 0
    for t in range(bl):
        word, bit = t // 32, np.uint32(1 << (t % 32))
        rows = 0
        for i in range(d_words.shape[1]):
            rows += _and32(d_words[word, i], bit) != 0
        cols = 0
        for j in range(x_words.shape[1]):
            cols += _and32(x_words[word, j], bit) != 0
        total += rows * cols
    return total


@njit(cache=True, nogil=True)
def _stochastic_update(w, model, params, s_up, s_down, w_min, w_max, c2c, x, d, lr, bl, dw_min, key):
    """Draw the row and column trains, then apply the coincidences with the model's kernel."""
    a, b = _update_scales(x, d, lr, bl, dw_min)
    if a == 0.0:
        return 0
    x_words = _train_words(x, a, bl, key, 0)
    d_words = _train_words(d, b, bl, key, 1)
    if model == CONSTANT or model == LINEAR or model == SOFT:
        gamma_up, gamma_down = _affine_gammas(model, params)
        _affine_rows(w, gamma_up, gamma_down, s_up, s_down, w_min, w_max, c2c, x, d, x_words, d_words, key)
    else:
        _chained_rows(w, model, params, s_up, s_down, w_min, w_max, c2c, x, d, x_words, d_words, key)
    return _coincidences(x_words, d_words, bl)


@njit(cache=True, nogil=True, error_model="numpy")
def _expected_affine_row(v, gamma_up, gamma_down, s_up, s_down, w_min, w_max, x, d_pos, a_scale, row_q, bl):
    """One row of the expected update for an affine response, float32 vector lanes."""
    one = np.float32(1.0)
    for j in range(v.size):
        n = np.float32(bl * min(a_scale * abs(x[j]), 1.0) * row_q)  # expected coincidences
        up = np.float32((x[j] > 0) != d_pos)  # blend, not select (see _affine_device)
        lo, hi = w_min[j], w_max[j]
        s = up * s_up[j] - (one - up) * s_down[j]
        c = (up * gamma_up + (one - up) * gamma_down) / (up * hi + (one - up) * lo)
        a = v[j]
        moved = min(max(a + n * s * max(one - c * a, np.float32(0.0)), lo), hi)
        v[j] = a if n == 0 else moved


@njit(cache=True, nogil=True)
def _expected_update(w, model, params, s_up, s_down, w_min, w_max, x, d, lr, bl, dw_min):
    a, b = _update_scales(x, d, lr, bl, dw_min)
    if a == 0.0:
        return
    rows, cols = w.shape
    if model == CONSTANT or model == LINEAR or model == SOFT:
        gamma_up, gamma_down = _affine_gammas(model, params)
        for i in range(rows):
            q = min(b * abs(d[i]), 1.0)
            if q > 0.0:
                _expected_affine_row(w[i], gamma_up, gamma_down, s_up[i], s_down[i], w_min[i], w_max[i], x,
                                     d[i] > 0, a, q, bl)
        return
    for i in range(rows):
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
