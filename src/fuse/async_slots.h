// AsyncSlots: the FUSE reads and writes of LVs on NBD PVs that are in
// flight without a FUSE thread waiting for them (VolumeSet::AsyncIo): each
// holds its request, its bytes and the volume's half of it, and is replied
// from the PV's completion, on the backend's I/O thread (docs/nbd.md,
// "Connections and requests").
//
// A fixed set per mount, taken and given back with one atomic each: no
// lock and, once a slot's buffer has grown to the largest request it
// served, no allocation per request. Threads start their search in a shard
// of their own so they rarely meet on a slot. When every slot is busy the
// handler serves the request synchronously, as before.
//
// A request that finds nothing of the mount's NBD traffic in flight
// (idle(): no slot busy, no synchronous turn) is served synchronously too:
// alone, its FUSE thread drives the connection itself while it waits, so
// the request costs no hand-off to the connection's I/O thread and back
// (two cross-CPU wake-ups, the dearest thing on a small VM); the slots
// are for requests that would otherwise wait behind another's round trip.
#pragma once

#include <fuse3/fuse_lowlevel.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <thread>
#include <vector>

#include "vgfs/volume.h"

namespace vgfs {

class AsyncSlots;

struct AsyncSlot {
  AsyncSlots* owner = nullptr;
  VolumeSet::AsyncIo io;
  fuse_req_t req = nullptr;
  std::vector<char> buf;  // grown on first use, kept
  std::atomic<bool> busy{false};
};

class AsyncSlots {
 public:
  static constexpr size_t kShards = 16;
  static constexpr size_t kPerShard = 64;  // in flight per shard before the synchronous path takes over

  AsyncSlots() : slots_(new AsyncSlot[kShards * kPerShard]) {
    for (size_t i = 0; i < kShards * kPerShard; ++i) slots_[i].owner = this;
  }
  AsyncSlots(const AsyncSlots&) = delete;
  AsyncSlots& operator=(const AsyncSlots&) = delete;
  ~AsyncSlots() { drain(); }

  // A free slot whose buffer holds `size` bytes, or null when all are busy.
  AsyncSlot* take(size_t size) {
    static std::atomic<size_t> next_shard{0};
    thread_local size_t shard = next_shard.fetch_add(1);
    const size_t total = kShards * kPerShard, first = (shard % kShards) * kPerShard;
    for (size_t k = 0; k < total; ++k) {
      AsyncSlot& s = slots_[(first + k) % total];
      bool expected = false;
      if (s.busy.load(std::memory_order_relaxed) ||
          !s.busy.compare_exchange_strong(expected, true, std::memory_order_acquire))
        continue;
      if (s.buf.size() < size) s.buf.resize(size);
      active_.fetch_add(1, std::memory_order_relaxed);
      return &s;
    }
    return nullptr;
  }
  // After its reply: the slot may serve another request at once.
  static void give_back(AsyncSlot& s) {
    s.req = nullptr;
    s.owner->active_.fetch_sub(1, std::memory_order_relaxed);
    s.busy.store(false, std::memory_order_release);
  }
  // Nothing in flight: no slot taken, no synchronous turn (see the top). A
  // hint: two requests that both see idle both go synchronously, as every
  // request did before the slots.
  bool idle() const { return active_.load(std::memory_order_relaxed) == 0; }
  // A request served synchronously while it lasts counts as in flight.
  class SyncTurn {
   public:
    explicit SyncTurn(AsyncSlots& slots) : slots_(slots) { slots_.active_.fetch_add(1, std::memory_order_relaxed); }
    ~SyncTurn() { slots_.active_.fetch_sub(1, std::memory_order_relaxed); }
    SyncTurn(const SyncTurn&) = delete;
    SyncTurn& operator=(const SyncTurn&) = delete;

   private:
    AsyncSlots& slots_;
  };
  // Waits until every slot is back (every NBD request has a deadline, so
  // each completes); called once the session loop has ended.
  void drain() {
    for (size_t i = 0; i < kShards * kPerShard; ++i)
      while (slots_[i].busy.load(std::memory_order_acquire)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

 private:
  std::unique_ptr<AsyncSlot[]> slots_;
  std::atomic<int> active_{0};  // slots taken plus synchronous turns
};

}  // namespace vgfs
