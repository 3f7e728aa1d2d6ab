// bf16 matmuls on AMX tiles with f32 accumulation, as an XLA FFI custom call: out[M][N] = A · B
// (+ bias), each operand given row-major or transposed. Built and loaded by amx_matmul.py; see its
// docstring for why and for the contract.
//
// Each call repacks B — and A unless it is row-major with M a multiple of 16 and K of 32, when its
// tiles are loaded from A itself — into contiguous 1 KiB tiles, zero-filled past M and K:
//   A  [ceil(M / 16)][Kt][16 rows][32]            bf16, left operands (Kt = ceil(K / 32))
//   B  [N / 16][Kt][16 pairs][16 columns][2]      bf16 pairs along K ("VNNI"), right operands
// A task owns 32 rows (one row tile at a ragged end) and up to 256 columns; per pair of column tiles
// it accumulates 2 x 2 tiles over blocks of K (tiles 0-3 accumulators, 4-5 rows of A, 6-7 columns of B)
// and stores them with the bias added. N must be a multiple of 16; M and K are anything.
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "amx_common.h"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using namespace sora_amx;  // configure_tiles, parallel_for, scratch

constexpr int64_t kTile = 512;     // bf16 elements in a 1 KiB tile
constexpr int64_t kTaskRows = 32;  // rows a task owns (two row tiles)
constexpr int64_t kTaskColumns = 256;
constexpr int64_t kKBlock = 8;     // K tiles (of 32) accumulated between stores of the sums

// Lanes below `count` (of 32 bf16 lanes).
inline __mmask32 first(int64_t count) {
  return count >= 32 ? __mmask32(0xFFFFFFFF) : count <= 0 ? __mmask32(0) : __mmask32((1u << count) - 1);
}

// 16 bf16 of a row-major source row from `at` (lanes past `count` zero), widened to 32-bit lanes.
inline __m512i widened(const uint16_t* at, int64_t count) {
  return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(__mmask16(first(count)), at));
}

// Row tile `rt` of row-major A (16 rows from rt·16, A(i, k) = a[i·K + k]) into its Kt packed
// tiles (`out`: the row tile's first): 64 bytes of a row to 64 bytes of a tile row.
void pack_a_rows(const uint16_t* a, int64_t m, int64_t k, int64_t rt, uint16_t* out) {
  const int64_t kt = (k + 31) / 32, rows = std::min<int64_t>(16, m - rt * 16);
  for (int64_t r = 0; r < 16; ++r) {
    const uint16_t* row = a + (rt * 16 + r) * k;
    for (int64_t kb = 0; kb < kt; ++kb) {
      const __m512i v = r < rows ? _mm512_maskz_loadu_epi16(first(k - kb * 32), row + kb * 32) : _mm512_setzero_si512();
      _mm512_store_si512(out + kb * kTile + r * 32, v);
    }
  }
}

// The 16 pairs (rows j, j + 1 of a row-major source, 16 values each from `at`, lanes past
// `count` zero; a row at or past `k` is zero) interleaved into 16 32-bit lanes.
inline __m512i pairs_at(const uint16_t* at, int64_t row_stride, int64_t j, int64_t k, int64_t count) {
  const __m512i even = j < k ? widened(at, count) : _mm512_setzero_si512();
  const __m512i odd = j + 1 < k ? widened(at + row_stride, count) : _mm512_setzero_si512();
  return _mm512_or_si512(even, _mm512_slli_epi32(odd, 16));
}

// v[i][j] -> v[j][i] for 16 vectors of 16 32-bit lanes: pairs of rows interleaved, then pairs
// of pairs, which leaves v[4g + q]'s 128-bit lane L holding column 4L + q of rows 4g..4g+3; a
// 4 x 4 transpose of those lanes finishes it.
inline void transpose16(__m512i v[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    v[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    v[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    v[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    v[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512i x0 = _mm512_shuffle_i32x4(v[q], v[4 + q], 0x44), x1 = _mm512_shuffle_i32x4(v[q], v[4 + q], 0xEE);
    const __m512i y0 = _mm512_shuffle_i32x4(v[8 + q], v[12 + q], 0x44);
    const __m512i y1 = _mm512_shuffle_i32x4(v[8 + q], v[12 + q], 0xEE);
    t[q] = _mm512_shuffle_i32x4(x0, y0, 0x88);       // column q
    t[4 + q] = _mm512_shuffle_i32x4(x0, y0, 0xDD);   // column 4 + q
    t[8 + q] = _mm512_shuffle_i32x4(x1, y1, 0x88);   // column 8 + q
    t[12 + q] = _mm512_shuffle_i32x4(x1, y1, 0xDD);  // column 12 + q
  }
  for (int i = 0; i < 16; ++i) v[i] = t[i];
}

// K tile `kb` of transposed A (A(i, k) = a[k·M + i]) into every row tile's packed tile kb. a's
// rows 2p and 2p + 1 hold A's columns 2p and 2p + 1: 16 values each per row tile, one per tile
// row, which interleave into the 16 pairs of column pair p — a 16 x 16 block of pairs indexed
// [p][row], transposed in registers into the tile's 16 rows. One task reads 32 whole rows of a.
void pack_a_transposed(const uint16_t* a, int64_t m, int64_t k, int64_t kb, uint16_t* ap) {
  const int64_t kt = (k + 31) / 32, mt = (m + 15) / 16;
  __m512i v[16];
  for (int64_t rt = 0; rt < mt; ++rt) {
    for (int64_t p = 0; p < 16; ++p) {
      const int64_t j = kb * 32 + 2 * p;
      v[p] = pairs_at(a + j * m + rt * 16, m, j, k, m - rt * 16);
    }
    transpose16(v);
    uint16_t* tile = ap + (rt * kt + kb) * kTile;
    for (int64_t r = 0; r < 16; ++r) _mm512_store_si512(tile + r * 32, v[r]);
  }
}

// K tile `kb` of row-major B (B(k, n) = b[k·N + n]) into every column tile's packed tile kb: rows
// 2p and 2p + 1, 16 columns at a time, interleaved into one 64-byte tile row. One task reads 32
// whole rows of b.
void pack_b_rows(const uint16_t* b, int64_t k, int64_t n, int64_t kb, uint32_t* bp) {
  const int64_t kt = (k + 31) / 32;
  for (int64_t p = 0; p < 16; ++p) {
    const int64_t j = kb * 32 + 2 * p;
    for (int64_t nt = 0; nt < n / 16; ++nt)
      _mm512_store_si512(bp + (nt * kt + kb) * (kTile / 2) + p * 16, pairs_at(b + j * n + nt * 16, n, j, k, 16));
  }
}

// Column tile `nt` of transposed B (B(k, n) = b[n·K + k]) into its Kt packed tiles of K pairs
// (`out`: the column tile's first): column n of B is b's row n, its pairs already adjacent.
void pack_b_columns(const uint16_t* b, int64_t k, int64_t nt, uint32_t* out) {
  const int64_t kt = (k + 31) / 32, pairs = k / 2;
  if (k % 32) std::memset(out, 0, kt * kTile * sizeof(uint16_t));  // the padding is zeros
  for (int64_t c = 0; c < 16; ++c) {
    const uint16_t* row = b + (nt * 16 + c) * k;
    for (int64_t p = 0; p < pairs; ++p) out[p * 16 + c] = uint32_t(row[2 * p]) | (uint32_t(row[2 * p + 1]) << 16);
    if (k % 2) out[pairs * 16 + c] = row[k - 1];
  }
}

// Tile loads and stores take their tile as a literal (an assembler register name), not a
// template argument.
template <int T>
inline void tile_store(void* at, int64_t stride) {
  if constexpr (T == 0) _tile_stored(0, at, stride);
  if constexpr (T == 1) _tile_stored(1, at, stride);
  if constexpr (T == 2) _tile_stored(2, at, stride);
  if constexpr (T == 3) _tile_stored(3, at, stride);
}

template <int T>
inline void tile_load(const void* at, int64_t stride) {
  if constexpr (T == 0) _tile_loadd(0, at, stride);
  if constexpr (T == 1) _tile_loadd(1, at, stride);
  if constexpr (T == 2) _tile_loadd(2, at, stride);
  if constexpr (T == 3) _tile_loadd(3, at, stride);
}

// The result: out[M][N] (+ bias[N] where bias is not null).
struct Output {
  float* at;
  int64_t m, n;
  const float* bias;
};

// Where a task keeps the running sums of one output tile between blocks of K: in the output
// itself, or — for the ragged last row tile, whose 16 rows would run past M — in the task's
// scratch (one 16 x 16 f32 tile per column tile of the task).
struct Sums {
  float* at;
  int64_t stride;  // bytes between rows
};

inline Sums sums_of(const Output& out, int64_t rt, int64_t ct, int64_t ct0, float* ragged) {
  if ((rt + 1) * 16 <= out.m) return {out.at + rt * 16 * out.n + ct * 16, out.n * 4};
  return {ragged + (ct - ct0) * 256, 64};
}

// Accumulator tile T (output tile rt, ct) stored: its running sums to `sums`; or, after the last
// block of K (`last` given), the result — straight into the output where its 16 rows are there and
// no bias is due, else through a tile in L1, valid rows only, the bias added on the way.
template <int T>
void put(const Sums& sums, const Output* last, int64_t rt, int64_t ct) {
  float* at = last ? last->at + rt * 16 * last->n + ct * 16 : nullptr;
  if (!last || (sums.at == at && !last->bias)) {
    tile_store<T>(sums.at, sums.stride);
    return;
  }
  float* tile = scratch<float>(3, 256);
  tile_store<T>(tile, 64);
  const int64_t rows = std::min<int64_t>(16, last->m - rt * 16);
  const __m512 add = last->bias ? _mm512_loadu_ps(last->bias + ct * 16) : _mm512_setzero_ps();
  for (int64_t r = 0; r < rows; ++r) _mm512_storeu_ps(at + r * last->n, _mm512_add_ps(_mm512_load_ps(tile + r * 16), add));
}

// Where A's tiles are: packed (1 KiB tiles), or — row-major A whose rows and K fill whole tiles —
// in A itself, rows K·2 bytes apart (no repacking pass over the largest operand of most calls).
struct Left {
  const uint16_t* base;
  int64_t row_tile;  // elements from one row tile to the next
  int64_t k_tile;    // elements from one K tile to the next
  int64_t stride;    // bytes between a tile's rows
};

// R row tiles (from rt) x C column tiles (from ct) += their products over K tiles kb0 .. kb1 - 1
// (the sums start at zero when kb0 is 0).
template <int R, int C>
void product(const Left& a, const uint32_t* bp, int64_t kt, int64_t rt, int64_t ct, int64_t kb0, int64_t kb1,
             const Sums* sums, const Output& out) {
  if (kb0 == 0) {
    _tile_zero(0);
    if constexpr (C > 1) _tile_zero(1);
    if constexpr (R > 1) _tile_zero(2);
    if constexpr (R > 1 && C > 1) _tile_zero(3);
  } else {
    tile_load<0>(sums[0].at, sums[0].stride);
    if constexpr (C > 1) tile_load<1>(sums[1].at, sums[1].stride);
    if constexpr (R > 1) tile_load<2>(sums[2].at, sums[2].stride);
    if constexpr (R > 1 && C > 1) tile_load<3>(sums[3].at, sums[3].stride);
  }
  const uint16_t* a0 = a.base + rt * a.row_tile;
  const uint16_t* a1 = a0 + a.row_tile;
  const uint32_t* b0 = bp + ct * kt * kTile / 2;
  const uint32_t* b1 = b0 + kt * kTile / 2;
  for (int64_t kb = kb0; kb < kb1; ++kb) {
    _tile_loadd(4, a0 + kb * a.k_tile, a.stride);
    _tile_loadd(6, b0 + kb * kTile / 2, 64);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (C > 1) {
      _tile_loadd(7, b1 + kb * kTile / 2, 64);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (R > 1) {
      _tile_loadd(5, a1 + kb * a.k_tile, a.stride);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (C > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  const Output* last = kb1 == kt ? &out : nullptr;
  put<0>(sums[0], last, rt, ct);
  if constexpr (C > 1) put<1>(sums[1], last, rt, ct + 1);
  if constexpr (R > 1) put<2>(sums[2], last, rt + 1, ct);
  if constexpr (R > 1 && C > 1) put<3>(sums[3], last, rt + 1, ct + 1);
}

// One task: output rows from tile rt (two row tiles, or one at the end) x column tiles ct0 .. ct1 - 1,
// K in blocks of kKBlock tiles so that the A and B tiles of a block stay in L1 across the columns.
void task_product(const Left& a, const uint32_t* bp, int64_t kt, int64_t mt, int64_t rt, int64_t ct0,
                  int64_t ct1, const Output& out) {
  float* ragged = scratch<float>(0, (kTaskColumns / 16) * 256);
  const int64_t rows = std::min<int64_t>(2, mt - rt);
  for (int64_t kb0 = 0; kb0 < kt; kb0 += kKBlock) {
    const int64_t kb1 = std::min(kt, kb0 + kKBlock);
    for (int64_t ct = ct0; ct < ct1; ct += 2) {
      const int64_t columns = std::min<int64_t>(2, ct1 - ct);
      const Sums sums[4] = {sums_of(out, rt, ct, ct0, ragged), sums_of(out, rt, ct + 1, ct0, ragged),
                            sums_of(out, rt + 1, ct, ct0, ragged), sums_of(out, rt + 1, ct + 1, ct0, ragged)};
      if (rows == 2 && columns == 2)
        product<2, 2>(a, bp, kt, rt, ct, kb0, kb1, sums, out);
      else if (rows == 2)
        product<2, 1>(a, bp, kt, rt, ct, kb0, kb1, sums, out);
      else if (columns == 2)
        product<1, 2>(a, bp, kt, rt, ct, kb0, kb1, sums, out);
      else
        product<1, 1>(a, bp, kt, rt, ct, kb0, kb1, sums, out);
    }
  }
}

using Bf16 = ffi::Buffer<ffi::BF16>;

ffi::Error Matmul(ffi::ThreadPool pool, Bf16 a, Bf16 b, ffi::Buffer<ffi::F32> bias, bool transpose_a,
                  bool transpose_b, ffi::ResultBuffer<ffi::F32> out) {
  const auto ad = a.dimensions(), bd = b.dimensions();
  if (ad.size() != 2 || bd.size() != 2) return ffi::Error::InvalidArgument("amx matmul: operands must be 2D");
  const int64_t m = transpose_a ? ad[1] : ad[0], k = transpose_a ? ad[0] : ad[1];
  const int64_t kb_ = transpose_b ? bd[1] : bd[0], n = transpose_b ? bd[0] : bd[1];
  if (k != kb_) return ffi::Error::InvalidArgument("amx matmul: contracted dimensions differ");
  if (n % 16) return ffi::Error::InvalidArgument("amx matmul: N must be a multiple of 16");
  if (bias.element_count() != 0 && bias.element_count() != n)
    return ffi::Error::InvalidArgument("amx matmul: bias must have N elements (or none)");
  const int64_t kt = (k + 31) / 32, mt = (m + 15) / 16, nt = n / 16;
  // The packed operands live in the calling thread's scratch (kept between calls: no allocation,
  // no page faults); the helpers only read them, and the caller is busy until they are done.
  const auto* abits = reinterpret_cast<const uint16_t*>(a.typed_data());
  const auto* bbits = reinterpret_cast<const uint16_t*>(b.typed_data());
  const bool direct = !transpose_a && k % 32 == 0 && m % 16 == 0;
  uint16_t* const ap = direct ? nullptr : scratch<uint16_t>(1, mt * kt * kTile);
  uint32_t* const bp = scratch<uint32_t>(2, nt * kt * kTile / 2);
  // Packing tasks: A's by row tile (row-major) or by K tile (transposed), none when direct; B's by
  // K tile (row-major) or by column tile (transposed) — each reading whole rows of its source.
  const int64_t a_tasks = direct ? 0 : transpose_a ? kt : mt, b_tasks = transpose_b ? nt : kt;
  parallel_for(pool, a_tasks + b_tasks, [&](int64_t task) {
    if (task < a_tasks && transpose_a)
      pack_a_transposed(abits, m, k, task, ap);
    else if (task < a_tasks)
      pack_a_rows(abits, m, k, task, ap + task * kt * kTile);
    else if (transpose_b)
      pack_b_columns(bbits, k, task - a_tasks, bp + (task - a_tasks) * kt * kTile / 2);
    else
      pack_b_rows(bbits, k, n, task - a_tasks, bp);
  });
  const Left left = direct ? Left{abits, 16 * k, 32, 2 * k} : Left{ap, kt * kTile, kTile, 64};
  const Output result{out->typed_data(), m, n, bias.element_count() ? bias.typed_data() : nullptr};
  const int64_t row_blocks = (m + kTaskRows - 1) / kTaskRows, column_blocks = (n + kTaskColumns - 1) / kTaskColumns;
  parallel_for(pool, row_blocks * column_blocks, [&](int64_t task) {
    // Column blocks outermost: consecutive tasks share B's tiles while walking A.
    const int64_t rt = (task % row_blocks) * 2, ct0 = (task / row_blocks) * (kTaskColumns / 16);
    task_product(left, bp, kt, mt, rt, ct0, std::min(ct0 + kTaskColumns / 16, nt), result);
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(SoraAmxMatmul, Matmul,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<Bf16>()
                                  .Arg<Bf16>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("transpose_a")
                                  .Attr<bool>("transpose_b")
                                  .Ret<ffi::Buffer<ffi::F32>>());
