// The lease record on a PV (include/vgfs/pv_lease.h, docs/nbd.md).
#include "vgfs/pv_lease.h"

#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "vgfs/crc32c.h"

namespace vgfs {

namespace {

constexpr char kMagic[8] = {'V', 'G', 'F', 'S', 'L', 'E', 'A', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHostAt = 128, kHostMax = 256, kBootAt = 384, kBootMax = 64;

void put32(std::string& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put64(std::string& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
uint32_t get32(std::string_view b, size_t at) {
  uint32_t v;
  std::memcpy(&v, b.data() + at, 4);
  return v;
}
uint64_t get64(std::string_view b, size_t at) {
  uint64_t v;
  std::memcpy(&v, b.data() + at, 8);
  return v;
}
// A NUL-padded field; nullopt when it fills its field without a NUL.
std::optional<std::string> get_string(std::string_view b, size_t at, size_t max) {
  std::string_view f = b.substr(at, max);
  size_t end = f.find('\0');
  if (end == std::string_view::npos) return std::nullopt;
  return std::string(f.substr(0, end));
}

}  // namespace

// Layout (little-endian): 0 magic, 8 version, 12 held, 16 holder uuid,
// 32 counter, 40 renewed_ms, 48 period_s, 52 expiry_s, 56 pid,
// 128 host (256 bytes, NUL-padded), 384 boot id (64), 4092 CRC32C of 0-4091.
std::string encode_lease(const LeaseRecord& l) {
  std::string b(kLeaseSize, '\0');
  std::memcpy(b.data(), kMagic, sizeof kMagic);
  put32(b, 8, kVersion);
  put32(b, 12, l.held ? 1 : 0);
  std::memcpy(b.data() + 16, l.holder.data(), 16);
  put64(b, 32, l.counter);
  put64(b, 40, l.renewed_ms);
  put32(b, 48, l.period_s);
  put32(b, 52, l.expiry_s);
  put64(b, 56, l.pid);
  std::memcpy(b.data() + kHostAt, l.host.data(), std::min(l.host.size(), kHostMax - 1));
  std::memcpy(b.data() + kBootAt, l.boot_id.data(), std::min(l.boot_id.size(), kBootMax - 1));
  put32(b, kLeaseSize - 4, crc32c(b.data(), kLeaseSize - 4));
  return b;
}

std::optional<LeaseRecord> decode_lease(std::string_view b) {
  if (b.size() != kLeaseSize || std::memcmp(b.data(), kMagic, sizeof kMagic) != 0 || get32(b, 8) != kVersion ||
      get32(b, kLeaseSize - 4) != crc32c(b.data(), kLeaseSize - 4) || get32(b, 12) > 1)
    return std::nullopt;
  LeaseRecord l;
  l.held = get32(b, 12) == 1;
  std::memcpy(l.holder.data(), b.data() + 16, 16);
  l.counter = get64(b, 32);
  l.renewed_ms = get64(b, 40);
  l.period_s = get32(b, 48);
  l.expiry_s = get32(b, 52);
  l.pid = get64(b, 56);
  std::optional<std::string> host = get_string(b, kHostAt, kHostMax), boot = get_string(b, kBootAt, kBootMax);
  if (!host || !boot) return std::nullopt;
  l.host = std::move(*host);
  l.boot_id = std::move(*boot);
  return l;
}

std::string lease_host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "?";
  return name;
}

std::string lease_boot_id() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(f, id);
  return id;
}

std::string lease_live_reason(const LeaseRecord& l, uint64_t now_ms) {
  if (!l.held) return "";
  const bool this_host = l.host == lease_host_name() && !l.boot_id.empty() && l.boot_id == lease_boot_id();
  // This host since its last boot: a holder whose process is gone is gone,
  // whatever the clock.
  if (this_host && !(l.pid > 0 && l.pid < (1u << 22) &&
                     (::kill(static_cast<pid_t>(l.pid), 0) == 0 || errno == EPERM)))
    return "";
  // Otherwise the renewals tell (on this host too: a process that stopped
  // renewing, or another one that got the holder's pid, does not hold it).
  // A clock behind ours makes the lease look older (taken over only once
  // it is past the expiry on our clock); one ahead makes it look renewed in
  // the future: still held.
  const uint64_t age_ms = l.renewed_ms >= now_ms ? 0 : now_ms - l.renewed_ms;
  if (age_ms >= uint64_t{l.expiry_s} * 1000) return "";
  if (this_host) return "its process is running";
  return fmt::format("renewed {:.1f} s ago, held until {} s without a renewal", static_cast<double>(age_ms) / 1000,
                     l.expiry_s);
}

}  // namespace vgfs
