// Fused flash attention for x86 CPUs with AMX (bf16 tiles) and AVX-512: forward and backward as
// XLA FFI custom calls. Built and loaded by amx_attention.py; see its docstring for the contract.
//
// Layout: every array is [..., N, D] row-major, the leading dimensions flattened into one "bh"
// index (batch x heads). q, k, v, dO are bf16 (q already scaled by 1/sqrt(D)); out, lse and the
// gradients are f32. N is a multiple of 32 and D of 32; keys at index >= `keys` are padding.
//
// Each task handles 16 rows (one AMX tile of rows) against all keys (or, for dK/dV, 16 keys
// against all queries): its score rows stay in cache (the forward's 16 x N f32 in L2, the
// backward's 16 x 64 blocks in L1) and never reach memory, which is what XLA cannot do on CPU
// (it has no matmul+softmax fusion). Tile matmuls need the right-hand
// operand in "VNNI" form (pairs of bf16 along the contracted dimension packed in 32 bits), so
// each call first repacks k, v (and for the backward q, dO) once per bh.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <thread>

#include "amx_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace sora_amx;  // kRows, configure_tiles, parallel_for, scratch, packed

// Tiles 0-3 accumulate (16 x 16 f32), tile 4 holds the left operand (16 x 32 bf16), tiles 5-7
// right operands (16 pairs x 16 columns).

// Blocked layouts keep every tile a contiguous 1 KiB (rows 64 bytes apart): row-major rows N
// elements apart would put a tile's 16 rows 4 or 8 KiB apart — the same L1 set, which thrashes.
//   scores  [N / 16][16 rows][16]   f32, as tiles store them
//   weights [N / 32][16 rows][32]   bf16, as tiles load them as left operands
//   keys    [N / 16][D / 2][16]     bf16 pairs along D, the right operand of a · keysᵀ
// Right operands of weights · values use pairs of rows, [N / 2][D] (rows D·4 bytes apart).
inline int64_t score_at(int64_t row, int64_t j) { return (j / 16) * 256 + row * 16; }  // j % 16 == 0
inline int64_t weight_at(int64_t row, int64_t j) { return (j / 32) * 512 + row * 32 + j % 32; }  // j % 16 == 0

// The T accumulator tiles (T <= 4) of a group: zeroed; += the left operand in tile 4 times the
// T right operands at b + t·step (rows `stride` bytes apart; tiles 5-7 take turns, so a load can
// overlap the previous product); stored to out + t·step (rows `stride` bytes apart).
template <int T>
inline void zero_accumulators() {
  _tile_zero(0);
  if constexpr (T > 1) _tile_zero(1);
  if constexpr (T > 2) _tile_zero(2);
  if constexpr (T > 3) _tile_zero(3);
}

template <int T>
inline void multiply_accumulate(const uint32_t* b, int64_t step, int64_t stride) {
  _tile_loadd(5, b, stride);
  _tile_dpbf16ps(0, 4, 5);
  if constexpr (T > 1) {
    _tile_loadd(6, b + step, stride);
    _tile_dpbf16ps(1, 4, 6);
  }
  if constexpr (T > 2) {
    _tile_loadd(7, b + 2 * step, stride);
    _tile_dpbf16ps(2, 4, 7);
  }
  if constexpr (T > 3) {
    _tile_loadd(5, b + 3 * step, stride);
    _tile_dpbf16ps(3, 4, 5);
  }
}

template <int T>
inline void store_accumulators(float* out, int64_t step, int64_t stride) {
  _tile_stored(0, out, stride);
  if constexpr (T > 1) _tile_stored(1, out + step, stride);
  if constexpr (T > 2) _tile_stored(2, out + 2 * step, stride);
  if constexpr (T > 3) _tile_stored(3, out + 3 * step, stride);
}

// out[16 x 16T] (scores layout) = a[16][d] · bᵀ for the 16T rows of b whose keys-layout blocks
// start at bt.
template <int T>
void dot_rows_group(const uint16_t* a, int64_t lda, const uint32_t* bt, int64_t d, float* out) {
  zero_accumulators<T>();
  for (int64_t c = 0; c < d / 32; ++c) {
    _tile_loadd(4, a + 32 * c, lda * 2);
    multiply_accumulate<T>(bt + c * 256, d * 8 /* uint32 per 16 keys */, 64);
  }
  store_accumulators<T>(out, 256, 64);
}

// Columns j0 .. j0 + 16·(T = 4, or 2 at the end) of a · bᵀ, into out (scores layout, from j0).
inline int64_t dot_rows_from(const uint16_t* a, int64_t lda, const uint32_t* bt, int64_t n, int64_t d, int64_t j0,
                             float* out) {
  if (j0 + 64 <= n) {
    dot_rows_group<4>(a, lda, bt + (j0 / 16) * d * 8, d, out);
    return 4;
  }
  dot_rows_group<2>(a, lda, bt + (j0 / 16) * d * 8, d, out);
  return 2;
}

// out[16][c0 : c0 + 16T] = w · b[n][c0 : ...], w in the weights layout, b as row pairs bv[n / 2][d].
template <int T>
void weigh_group(const uint16_t* w, int64_t n, const uint32_t* bv, int64_t d, int64_t c0, float* out) {
  zero_accumulators<T>();
  for (int64_t k0 = 0; k0 < n; k0 += 32) {
    _tile_loadd(4, w + k0 * 16, 64);
    multiply_accumulate<T>(bv + (k0 / 2) * d + c0, 16, d * 4);
  }
  store_accumulators<T>(out + c0, 16, d * 4);
}

// out[16][d] = w (weights layout, 16 x n) · b[n][d] (as row pairs bv); n % 32 == 0, d % 32 == 0.
void weigh(const uint16_t* w, int64_t n, const uint32_t* bv, int64_t d, float* out) {
  int64_t c0 = 0;
  for (; c0 + 64 <= d; c0 += 64) weigh_group<4>(w, n, bv, d, c0, out);
  if (c0 < d) weigh_group<2>(w, n, bv, d, c0, out);
}

// x [n][d] bf16 -> the keys layout: out[j / 16][p][j % 16] = (x[j][2p], x[j][2p + 1]).
void pairs_transposed(const uint16_t* x, int64_t n, int64_t d, uint32_t* out) {
  const uint32_t* x32 = reinterpret_cast<const uint32_t*>(x);
  const int64_t pairs = d / 2;
  for (int64_t j0 = 0; j0 < n; j0 += 16) {
    uint32_t* block = out + j0 * pairs;
    for (int64_t j = 0; j < 16; ++j)
      for (int64_t p = 0; p < pairs; ++p) block[p * 16 + j] = x32[(j0 + j) * pairs + p];
  }
}

// x [n][d] bf16 -> pairs of rows: out[r][c] = (x[2r][c], x[2r + 1][c]).
void row_pairs(const uint16_t* x, int64_t n, int64_t d, uint32_t* out) {
  for (int64_t r = 0; r < n / 2; ++r) {
    const uint16_t* even = x + 2 * r * d;
    const uint16_t* odd = even + d;
    for (int64_t c = 0; c < d; ++c) out[r * d + c] = uint32_t(even[c]) | (uint32_t(odd[c]) << 16);
  }
}

// Lanes of the 16 columns from j that are below `valid`.
inline __mmask16 below(int64_t j, int64_t valid) {
  return j + 16 <= valid ? __mmask16(0xFFFF) : j >= valid ? __mmask16(0) : __mmask16((1u << (valid - j)) - 1);
}

// exp(x) for the attention weights, within 8.6e-5 (relative) — 20x under bf16's rounding step,
// and the cubic the pure-JAX kernel uses (attention.EXP2_CUBIC): x·log2(e) = n + f with
// 0 <= f < 1, 2^f by the cubic, times 2^n by vscalefps (which also takes care of underflow to 0).
inline __m512 exp_ps(__m512 x) {
  const __m512 t = _mm512_mul_ps(_mm512_max_ps(x, _mm512_set1_ps(-200.0f)), _mm512_set1_ps(1.4426950408889634f));
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(t, n);
  __m512 p = _mm512_set1_ps(0.07706616105926503f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.2276452063258798f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.695117175392756f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// 32 values, lo then hi, rounded to bf16 into one 64-byte line (dst 64-byte aligned).
inline void store_bf16_pair(uint16_t* dst, __m512 lo, __m512 hi) {
  _mm512_store_si512(dst, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

int64_t leading(ffi::Span<const int64_t> dims) {
  int64_t bh = 1;
  for (size_t i = 0; i + 2 < dims.size(); ++i) bh *= dims[i];
  return bh;
}

ffi::Error check_shapes(int64_t n, int64_t d, int64_t keys, int64_t nk) {
  if (n % 32 || nk % 32 || d % 32)
    return ffi::Error::InvalidArgument("amx attention: token counts and head dim must be multiples of 32");
  if (keys < 1 || keys > nk) return ffi::Error::InvalidArgument("amx attention: keys out of range");
  return ffi::Error::Success();
}

using Bf16 = ffi::Buffer<ffi::BF16>;
using F32 = ffi::Buffer<ffi::F32>;
using F32Out = ffi::ResultBuffer<ffi::F32>;

const uint16_t* bits(const Bf16& x) { return reinterpret_cast<const uint16_t*>(x.typed_data()); }

// Forward: out = softmax(q kᵀ) v and lse = log-sum-exp of each query's scores.
ffi::Error Forward(ffi::ThreadPool pool, Bf16 q, Bf16 k, Bf16 v, int64_t keys, F32Out out, F32Out lse) {
  const auto dims = q.dimensions();
  const int64_t bh = leading(dims), nq = dims[dims.size() - 2], d = dims.back();
  const int64_t nk = k.dimensions()[dims.size() - 2];
  if (auto e = check_shapes(nq, d, keys, nk); e.failure()) return e;
  auto kt = packed(bh * nk * d / 2), vv = packed(bh * nk * d / 2);
  const uint16_t *qp = bits(q), *kp = bits(k), *vp = bits(v);
  parallel_for(pool, bh, [&](int64_t b) {
    pairs_transposed(kp + b * nk * d, nk, d, kt.get() + b * nk * d / 2);
    row_pairs(vp + b * nk * d, nk, d, vv.get() + b * nk * d / 2);
  });
  float* outp = out->typed_data();
  float* lsep = lse->typed_data();
  const int64_t blocks = nq / kRows;
  parallel_for(pool, bh * blocks, [&](int64_t task) {
    const int64_t b = task / blocks, i0 = (task % blocks) * kRows;
    float* scores = scratch<float>(0, kRows * nk);
    uint16_t* weights = scratch<uint16_t>(1, kRows * nk);
    float* acc = scratch<float>(2, kRows * d);
    float sums[kRows];
    __m512 peaks[kRows];
    for (int64_t r = 0; r < kRows; ++r) peaks[r] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
    // Scores 64 columns at a time, each row's running maximum taken while the group is in L1.
    for (int64_t j0 = 0; j0 < nk; j0 += 64) {
      const int64_t groups = dot_rows_from(qp + (b * nq + i0) * d, d, kt.get() + b * nk * d / 2, nk, d, j0,
                                           scores + (j0 / 16) * 256);
      for (int64_t t = 0; t < groups; ++t) {
        const __mmask16 valid = below(j0 + 16 * t, keys);
        for (int64_t r = 0; r < kRows; ++r)
          peaks[r] = _mm512_mask_max_ps(peaks[r], valid, peaks[r], _mm512_load_ps(scores + score_at(r, j0 + 16 * t)));
      }
    }
    for (int64_t r = 0; r < kRows; ++r) {
      const float m = _mm512_reduce_max_ps(peaks[r]);
      __m512 total = _mm512_setzero_ps();
      for (int64_t j = 0; j < nk; j += 32) {
        const __m512 x0 = _mm512_sub_ps(_mm512_load_ps(scores + score_at(r, j)), _mm512_set1_ps(m));
        const __m512 x1 = _mm512_sub_ps(_mm512_load_ps(scores + score_at(r, j + 16)), _mm512_set1_ps(m));
        const __m512 e0 = _mm512_maskz_mov_ps(below(j, keys), exp_ps(x0));
        const __m512 e1 = _mm512_maskz_mov_ps(below(j + 16, keys), exp_ps(x1));
        total = _mm512_add_ps(total, _mm512_add_ps(e0, e1));
        store_bf16_pair(weights + weight_at(r, j), e0, e1);
      }
      sums[r] = _mm512_reduce_add_ps(total);
      lsep[b * nq + i0 + r] = m + std::log(sums[r]);
    }
    weigh(weights, nk, vv.get() + b * nk * d / 2, d, acc);
    for (int64_t r = 0; r < kRows; ++r) {
      const float inv = 1.0f / sums[r];
      float* o = outp + (b * nq + i0 + r) * d;
      for (int64_t c = 0; c < d; ++c) o[c] = acc[r * d + c] * inv;
    }
  });
  return ffi::Error::Success();
}

// For 16 rows against all n rows of the other operand: s = a_s · bᵀ_s, dp = a_p · bᵀ_p,
// p = exp(s - lse), ds = p (dp - delta), rounded to bf16 into the weights layout; lse/delta are
// per row (`per_row`) or per column. Columns >= `valid` get 0. 64 columns at a time, so the f32
// s and dp of a group (4 KiB each) go from the tiles through L1 into the exp and never further.
void weights_and_grads(const uint16_t* a_s, const uint32_t* bt_s, const uint16_t* a_p, const uint32_t* bt_p,
                       int64_t n, int64_t d, int64_t valid, const float* lse, const float* delta, bool per_row,
                       uint16_t* p_out, uint16_t* ds_out) {
  alignas(64) float s[4 * 256];
  alignas(64) float dp[4 * 256];
  for (int64_t j0 = 0; j0 < n; j0 += 64) {
    const int64_t groups = dot_rows_from(a_s, d, bt_s, n, d, j0, s);
    dot_rows_from(a_p, d, bt_p, n, d, j0, dp);
    for (int64_t t = 0; t < groups; t += 2) {  // 32 columns: one full cache line of bf16 per row
      const int64_t j = j0 + 16 * t;
      const __mmask16 keep0 = below(j, valid), keep1 = below(j + 16, valid);
      const float* s0 = s + t * 256;
      const float* dp0 = dp + t * 256;
      for (int64_t r = 0; r < kRows; ++r) {
        const __m512 l0 = per_row ? _mm512_set1_ps(lse[r]) : _mm512_loadu_ps(lse + j);
        const __m512 l1 = per_row ? l0 : _mm512_loadu_ps(lse + j + 16);
        const __m512 dl0 = per_row ? _mm512_set1_ps(delta[r]) : _mm512_loadu_ps(delta + j);
        const __m512 dl1 = per_row ? dl0 : _mm512_loadu_ps(delta + j + 16);
        const __m512 p0 = _mm512_maskz_mov_ps(keep0, exp_ps(_mm512_sub_ps(_mm512_load_ps(s0 + r * 16), l0)));
        const __m512 p1 = _mm512_maskz_mov_ps(keep1, exp_ps(_mm512_sub_ps(_mm512_load_ps(s0 + 256 + r * 16), l1)));
        const __m512 ds0 = _mm512_mul_ps(p0, _mm512_sub_ps(_mm512_load_ps(dp0 + r * 16), dl0));
        const __m512 ds1 = _mm512_mul_ps(p1, _mm512_sub_ps(_mm512_load_ps(dp0 + 256 + r * 16), dl1));
        if (p_out) store_bf16_pair(p_out + weight_at(r, j), p0, p1);
        store_bf16_pair(ds_out + weight_at(r, j), ds0, ds1);
      }
    }
  }
}

// Backward: dq (w.r.t. the scaled q), dk, dv from dO, the forward's lse and delta = rowsum(dO·out).
// dK/dV: tasks own 16 keys and sweep all queries; dQ: tasks own 16 queries and sweep all keys
// (recomputing scores and dP once more rather than sharing dQ between threads).
ffi::Error Backward(ffi::ThreadPool pool, Bf16 q, Bf16 k, Bf16 v, Bf16 dout, F32 lse, F32 delta, int64_t keys,
                    F32Out dq, F32Out dk, F32Out dv) {
  const auto dims = q.dimensions();
  const int64_t bh = leading(dims), nq = dims[dims.size() - 2], d = dims.back();
  const int64_t nk = k.dimensions()[dims.size() - 2];
  if (auto e = check_shapes(nq, d, keys, nk); e.failure()) return e;
  const uint16_t *qp = bits(q), *kp = bits(k), *vp = bits(v), *dop = bits(dout);
  const int64_t qsize = nq * d / 2, ksize = nk * d / 2;  // uint32 per bh
  auto qt = packed(bh * qsize), dot = packed(bh * qsize), qv = packed(bh * qsize), dov = packed(bh * qsize);
  auto kt = packed(bh * ksize), vt = packed(bh * ksize), kv = packed(bh * ksize);
  parallel_for(pool, bh * 2, [&](int64_t task) {
    const int64_t b = task / 2;
    if (task % 2 == 0) {
      pairs_transposed(qp + b * nq * d, nq, d, qt.get() + b * qsize);
      pairs_transposed(dop + b * nq * d, nq, d, dot.get() + b * qsize);
      row_pairs(qp + b * nq * d, nq, d, qv.get() + b * qsize);
      row_pairs(dop + b * nq * d, nq, d, dov.get() + b * qsize);
    } else {
      pairs_transposed(kp + b * nk * d, nk, d, kt.get() + b * ksize);
      pairs_transposed(vp + b * nk * d, nk, d, vt.get() + b * ksize);
      row_pairs(kp + b * nk * d, nk, d, kv.get() + b * ksize);
    }
  });
  const float *lsep = lse.typed_data(), *deltap = delta.typed_data();
  float *dqp = dq->typed_data(), *dkp = dk->typed_data(), *dvp = dv->typed_data();
  const int64_t key_blocks = nk / kRows, query_blocks = nq / kRows;
  parallel_for(pool, bh * (key_blocks + query_blocks), [&](int64_t task) {
    if (task < bh * key_blocks) {  // dK, dV for keys j0..j0+15
      const int64_t b = task / key_blocks, j0 = (task % key_blocks) * kRows;
      uint16_t* p = scratch<uint16_t>(2, kRows * nq);
      uint16_t* ds = scratch<uint16_t>(3, kRows * nq);
      weights_and_grads(kp + (b * nk + j0) * d, qt.get() + b * qsize, vp + (b * nk + j0) * d, dot.get() + b * qsize,
                        nq, d, nq, lsep + b * nq, deltap + b * nq, false, p, ds);
      for (int64_t r = std::max<int64_t>(keys - j0, 0); r < kRows; ++r)  // padding keys (rows here): no weight
        for (int64_t j = 0; j < nq; j += 16) {
          std::fill_n(p + weight_at(r, j), 16, 0);
          std::fill_n(ds + weight_at(r, j), 16, 0);
        }
      weigh(p, nq, dov.get() + b * qsize, d, dvp + (b * nk + j0) * d);
      weigh(ds, nq, qv.get() + b * qsize, d, dkp + (b * nk + j0) * d);
    } else {  // dQ for queries i0..i0+15
      task -= bh * key_blocks;
      const int64_t b = task / query_blocks, i0 = (task % query_blocks) * kRows;
      uint16_t* ds = scratch<uint16_t>(3, kRows * nk);
      weights_and_grads(qp + (b * nq + i0) * d, kt.get() + b * ksize, dop + (b * nq + i0) * d, vt.get() + b * ksize,
                        nk, d, keys, lsep + b * nq + i0, deltap + b * nq + i0, true, nullptr, ds);
      weigh(ds, nk, kv.get() + b * ksize, d, dqp + (b * nq + i0) * d);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoraAmxAttentionForward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Attr<int64_t>("keys")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoraAmxAttentionBackward, Backward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Attr<int64_t>("keys")
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
