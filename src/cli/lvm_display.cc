// LVM2-style size display (src/cli/lvm_display.h).
#include "cli/lvm_display.h"

#include <fmt/format.h>

#include <cstring>

namespace vgfs::cli {

namespace {

__extension__ typedef unsigned __int128 u128;

constexpr char kUnits[] = "hHrRbBsSkmgtpeKMGTPE";

// The prefixes from the largest down, with their letters and words.
struct Prefix {
  char lower, upper;
  const char* binary_word;  // powers of 1024
  const char* decimal_word;
};
constexpr Prefix kPrefixes[] = {{'e', 'E', "EiB", "EB"}, {'p', 'P', "PiB", "PB"}, {'t', 'T', "TiB", "TB"},
                                {'g', 'G', "GiB", "GB"}, {'m', 'M', "MiB", "MB"}, {'k', 'K', "KiB", "kB"}};

uint64_t power(uint64_t base, int n) {
  uint64_t v = 1;
  for (int i = 0; i < n; ++i) v *= base;
  return v;
}

// bytes / unit with two decimals, rounded to nearest (ties to even), and
// whether that rounded up.
std::string two_decimals(uint64_t bytes, uint64_t unit, bool* rounded_up) {
  const u128 scaled = static_cast<u128>(bytes) * 100;
  u128 q = scaled / unit;
  const u128 rem = scaled % unit;
  *rounded_up = 2 * rem > unit || (2 * rem == unit && (q & 1));
  if (*rounded_up) ++q;
  return fmt::format("{}.{:02}", static_cast<uint64_t>(q / 100), static_cast<unsigned>(q % 100));
}

}  // namespace

Status check_report_unit(const std::string& unit) {
  if (unit.size() == 1 && std::strchr(kUnits, unit[0]) != nullptr) return Status::Ok();
  return Status::Error(EINVAL, fmt::format("bad --units \"{}\": use one of h, b, s, k, m, g, t, p, e (powers of 1024), "
                                           "H, K, M, G, T, P, E (powers of 1000), or r/R (human, '<' where rounded up)",
                                           unit));
}

std::string lvm_display_size(uint64_t bytes, char unit, bool suffix, SuffixForm form) {
  const bool word = form == SuffixForm::kWord;
  if (unit == 'b' || unit == 'B' || unit == 's' || unit == 'S') {
    const bool sectors = unit == 's' || unit == 'S';
    // Sectors: LVM2 works in whole sectors; a partial one shows rounded up.
    std::string n = std::to_string(sectors ? bytes / 512 + (bytes % 512 != 0) : bytes);
    if (!suffix) return n;
    return n + (word ? (sectors ? " sectors" : " B") : (sectors ? "S" : "B"));
  }
  const bool human = unit == 'h' || unit == 'H' || unit == 'r' || unit == 'R';
  const bool decimal = unit == 'H' || unit == 'R' || (unit >= 'A' && unit <= 'Z' && !human);
  const uint64_t base = decimal ? 1000 : 1024;
  int index = -1;  // into kPrefixes; -1: bytes
  if (human) {
    for (int i = 0; i < 6; ++i)
      if (bytes >= power(base, 6 - i)) {
        index = i;
        break;
      }
  } else {
    for (int i = 0; i < 6; ++i)
      if (kPrefixes[i].lower == unit || kPrefixes[i].upper == unit) index = i;
  }
  const Prefix* p = index >= 0 ? &kPrefixes[index] : nullptr;
  auto suffix_text = [&]() -> std::string {
    if (!p) return word ? " B" : "B";
    if (word) return std::string(" ") + (decimal ? p->decimal_word : p->binary_word);
    return std::string(1, decimal ? p->upper : p->lower);
  };
  // LVM2 always shows the suffix of a human size: without it the number means nothing.
  const bool with_suffix = suffix || human;
  if (bytes == 0) return with_suffix && !human ? "0" + suffix_text() : human ? (word ? "0 " : "0 ") : "0";
  if (!p) return std::to_string(bytes) + (with_suffix ? suffix_text() : "");
  bool rounded_up = false;
  std::string digits = two_decimals(bytes, power(base, 6 - index), &rounded_up);
  const bool mark = (unit == 'r' || unit == 'R') && rounded_up;
  return (mark ? "<" : "") + digits + (with_suffix ? suffix_text() : "");
}

}  // namespace vgfs::cli
