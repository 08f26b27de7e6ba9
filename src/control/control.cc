// The control-file protocol (include/vgfs/control.h).
#include "vgfs/control.h"

#include <fmt/format.h>

namespace vgfs {

Result<Command> parse_command(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  Command cmd;
  size_t at = 0;
  while (at < line.size()) {
    size_t start = line.find_first_not_of(" \t", at);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    (cmd.verb.empty() ? cmd.verb : cmd.args.emplace_back()) = std::string(line.substr(start, end - start));
    at = end;
  }
  if (cmd.verb.empty()) return Status::Error(EINVAL, "empty command");
  return Status::Error(EINVAL, fmt::format("unknown command \"{}\"", cmd.verb));
}

Reply Reply::from(const Status& status) {
  if (status.ok()) return ok("");
  return Reply{status.code(), "error: " + status.message() + "\n"};
}

Reply Reply::ok(std::string_view what) {
  return Reply{0, what.empty() ? std::string("ok\n") : fmt::format("ok {}\n", what)};
}

}  // namespace vgfs
