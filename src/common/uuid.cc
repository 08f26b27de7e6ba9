// UUIDs (include/vgfs/uuid.h), generated and parsed with Boost.Uuid.
#include "vgfs/uuid.h"

#include <boost/uuid/random_generator.hpp>
#include <boost/uuid/string_generator.hpp>
#include <boost/uuid/uuid.hpp>
#include <boost/uuid/uuid_io.hpp>
#include <cstring>
#include <fmt/format.h>

namespace vgfs {

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

}  // namespace vgfs
