// What the AMX kernels (amx_attention.cc, amx_matmul.cc) share: the tile configuration, work
// spread over XLA's intra-op threads, per-thread scratch. Included, not compiled on its own.
#pragma once

#include <immintrin.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <thread>

#include "xla/ffi/api/ffi.h"

namespace sora_amx {
namespace {  // internal linkage: each kernel library keeps its own copy (no symbol interposition)

namespace ffi = xla::ffi;

constexpr int64_t kRows = 16;  // rows of an AMX tile; also the rows a task owns

struct TileConfig {
  uint8_t palette;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

// All eight tiles are 16 rows of 64 bytes: 16 x 16 f32 accumulators, 16 x 32 bf16 left operands,
// 16 pairs x 16 columns right operands; which tile plays which part is each kernel's choice.
void configure_tiles() {
  TileConfig config{};
  config.palette = 1;
  for (int i = 0; i < 8; ++i) {
    config.rows[i] = 16;
    config.colsb[i] = 64;
  }
  _tile_loadconfig(&config);
}

// Work items handed out to XLA's intra-op threads and the calling thread alike; returns when all
// are done. Helpers that start after the work is gone touch only the shared counters.
struct Work {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  int64_t total = 0;
  std::function<void(int64_t)> item;
};

void run_items(const std::shared_ptr<Work>& work) {
  int64_t i = work->next.fetch_add(1);
  if (i >= work->total) return;
  TileConfig saved{};
  _tile_storeconfig(&saved);  // whatever the thread's other AMX users configured, restored below
  configure_tiles();
  for (; i < work->total; i = work->next.fetch_add(1)) {
    work->item(i);
    work->done.fetch_add(1, std::memory_order_release);
  }
  if (saved.palette)
    _tile_loadconfig(&saved);
  else
    _tile_release();
}

void parallel_for(ffi::ThreadPool& pool, int64_t total, std::function<void(int64_t)> item) {
  auto work = std::make_shared<Work>();
  work->total = total;
  work->item = std::move(item);
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), total) - 1;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([work] { run_items(work); });
  run_items(work);
  while (work->done.load(std::memory_order_acquire) < total) std::this_thread::yield();
}

// Per-thread scratch that outlives a call (XLA's threads do too): a task's score rows are reused,
// not allocated and zeroed for every 16 rows. A task uses slot i for its i-th buffer; 64-byte
// aligned: whole cache lines, aligned vector loads and stores.
void* scratch_bytes(int slot, int64_t bytes) {
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  thread_local std::unique_ptr<void, Free> buffers[4];
  thread_local int64_t sizes[4] = {};
  const int64_t size = (bytes + 63) / 64 * 64;
  if (sizes[slot] < size) {
    buffers[slot].reset(std::aligned_alloc(64, size));
    sizes[slot] = size;
  }
  return buffers[slot].get();
}

template <typename T>
T* scratch(int slot, int64_t count) {
  return static_cast<T*>(scratch_bytes(slot, count * int64_t(sizeof(T))));
}

// Repacked operands (uninitialized: every element is written before it is read).
std::unique_ptr<uint32_t[]> packed(int64_t count) { return std::unique_ptr<uint32_t[]>(new uint32_t[count]); }

}  // namespace
}  // namespace sora_amx
