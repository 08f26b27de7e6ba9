// Sizes, names, ranges, UUIDs and CRC32C (see include/vgfs/units.h).
#include "vgfs/units.h"

#include <boost/crc.hpp>
#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <boost/uuid/string_generator.hpp>
#include <charconv>
#include <cstring>
#include <fmt/format.h>

namespace vgfs {

namespace {

struct Suffix {
  std::string_view name;
  uint64_t factor;
};
constexpr Suffix kSuffixes[] = {{"B", 1}, {"KiB", KiB}, {"MiB", MiB}, {"GiB", GiB}, {"TiB", TiB}};

bool parse_u64(std::string_view text, uint64_t* out) {
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

Result<uint64_t> parse_size(std::string_view text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  uint64_t number = 0;
  if (!parse_u64(text.substr(0, digits), &number))
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": expected a whole number with an optional "
                                             "suffix B, KiB, MiB, GiB or TiB", text));
  std::string_view suffix = text.substr(digits);
  uint64_t factor = 0;
  if (suffix.empty()) factor = 1;
  for (const Suffix& s : kSuffixes)
    if (suffix == s.name) factor = s.factor;
  if (factor == 0)
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": unknown suffix \"{}\" (use B, KiB, MiB, "
                                             "GiB or TiB)", text, suffix));
  if (number > UINT64_MAX / factor)
    return Status::Error(EINVAL, fmt::format("bad size \"{}\": too large", text));
  return number * factor;
}

std::string format_size(uint64_t bytes) {
  for (int i = 4; i >= 1; --i) {
    const Suffix& s = kSuffixes[i];
    if (bytes != 0 && bytes % s.factor == 0) return fmt::format("{}{}", bytes / s.factor, s.name);
  }
  return fmt::format("{}B", bytes);
}

std::string human_size(uint64_t bytes) {
  for (int i = 4; i >= 1; --i) {
    const Suffix& s = kSuffixes[i];
    if (bytes >= s.factor) {
      if (bytes % s.factor == 0) return fmt::format("{}{}", bytes / s.factor, s.name);
      return fmt::format("{:.1f}{}", static_cast<double>(bytes) / static_cast<double>(s.factor), s.name);
    }
  }
  return fmt::format("{}B", bytes);
}

Status check_name(std::string_view what, std::string_view name) {
  if (name.empty()) return Status::Error(EINVAL, fmt::format("{} name is empty", what));
  if (name.size() > 127)
    return Status::Error(EINVAL, fmt::format("{} name \"{}\" is longer than 127 characters", what, name));
  if (name[0] == '-' || name[0] == '.')
    return Status::Error(EINVAL, fmt::format("bad {} name \"{}\": it must not start with '-' or '.'", what, name));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '+' || c == '-';
    if (!ok)
      return Status::Error(EINVAL, fmt::format("bad {} name \"{}\": only letters, digits and _ . + - are "
                                               "allowed", what, name));
  }
  return Status::Ok();
}

Result<IndexRange> parse_range(std::string_view text) {
  auto bad = [&] {
    return Status::Error(EINVAL, fmt::format("bad range \"{}\": expected FIRST-LAST or N", text));
  };
  size_t dash = text.find('-');
  uint64_t first = 0, last = 0;
  if (dash == std::string_view::npos) {
    if (!parse_u64(text, &first)) return bad();
    return IndexRange{first, 1};
  }
  if (!parse_u64(text.substr(0, dash), &first) || !parse_u64(text.substr(dash + 1), &last)) return bad();
  if (last < first)
    return Status::Error(EINVAL, fmt::format("bad range \"{}\": last is below first", text));
  if (last == UINT64_MAX) return bad();
  return IndexRange{first, last - first + 1};
}

std::string format_range(uint64_t first, uint64_t count) {
  if (count == 1) return fmt::format("{}", first);
  return fmt::format("{}-{}", first, first + count - 1);
}

Uuid new_uuid() {
  thread_local boost::uuids::random_generator generator;
  boost::uuids::uuid u = generator();
  Uuid out;
  std::memcpy(out.data(), u.data, out.size());
  return out;
}

std::string format_uuid(const Uuid& uuid) {
  boost::uuids::uuid u;
  std::memcpy(u.data, uuid.data(), uuid.size());
  return boost::uuids::to_string(u);
}

Result<Uuid> parse_uuid(std::string_view text) {
  if (text.size() != 36) return Status::Error(EINVAL, fmt::format("bad UUID \"{}\"", text));
  try {
    boost::uuids::uuid u = boost::uuids::string_generator()(std::string(text));
    Uuid out;
    std::memcpy(out.data(), u.data, out.size());
    return out;
  } catch (const std::exception&) {
    return Status::Error(EINVAL, fmt::format("bad UUID \"{}\"", text));
  }
}

uint32_t crc32c(const void* data, size_t len) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, len);
  return crc.checksum();
}

}  // namespace vgfs
