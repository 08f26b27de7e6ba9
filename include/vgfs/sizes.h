// Byte sizes: the binary units and the rounding arithmetic every layer shares.
//
// Invariant: pure functions of their arguments. div_ceil() never wraps (it is
// not written as (a + b - 1) / b, which does for `a` near 2^64); align_up()
// is only for values whose aligned result fits in 64 bits.
#pragma once

#include <cstdint>

namespace vgfs {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;
constexpr uint64_t TiB = 1024 * GiB;

inline bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }
// a / b rounded up (b > 0): how many b-sized pieces cover a bytes.
constexpr uint64_t div_ceil(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

}  // namespace vgfs
