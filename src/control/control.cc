// The control-file protocol (include/vgfs/control.h).
#include "vgfs/control.h"

#include <charconv>
#include <fmt/format.h>

#include "vgfs/escape.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

namespace {

constexpr std::string_view kUsage[] = {
    "move LV[:LE_FIRST-LE_LAST] PV[:PE_FIRST]", "pvmove PV [DEST_PV ...]", "abort JOB", "pause JOB", "resume JOB",
    "limit JOB RATE", "lvcreate NAME SIZE [PV ...]", "lvextend NAME SIZE", "lvreduce NAME SIZE", "lvremove NAME",
    "lvrename OLD NEW", "pvadd PATH [NAME]", "pvremove PV",
};

// Splits a command line into words (include/vgfs/control.h): blanks
// separate words; "..." quotes blanks; a backslash takes the next byte
// literally, inside quotes or out.
Result<std::vector<std::string>> split(std::string_view line) {
  std::vector<std::string> words;
  size_t i = 0;
  for (;;) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) return words;
    std::string word;
    bool quoted = false;
    const size_t start = i;
    for (; i < line.size(); ++i) {
      const char c = line[i];
      if (!quoted && (c == ' ' || c == '\t')) break;
      // Only the line's end may carry a bare CR (echo from a CRLF shell):
      // elsewhere it would make `/a\r` and `/a` the same path by position.
      if (!quoted && c == '\r')
        return Status::Error(EINVAL, fmt::format("a carriage return in word {} (byte {}); quote it as \"...\" to "
                                                 "make it part of the word", words.size() + 1, i));
      if (c == '"') {
        quoted = !quoted;
      } else if (c == '\\') {
        if (++i == line.size())
          return Status::Error(EINVAL, fmt::format("a backslash ends the command (word {}); write \\\\ for one",
                                                   words.size() + 1));
        word += line[i];
      } else {
        word += c;
      }
    }
    if (quoted)
      return Status::Error(EINVAL, fmt::format("unterminated quote in word {} (from byte {}); close it with \"",
                                               words.size() + 1, start));
    words.push_back(std::move(word));
  }
}

Status usage(std::string_view verb, std::string_view what) {
  for (std::string_view u : kUsage)
    if (u.substr(0, u.find(' ')) == verb)
      return Status::Error(EINVAL, fmt::format("{}; usage: {}", what, u));
  return Status::Error(EINVAL, std::string(what));
}

Result<uint64_t> job_id(const std::string& verb, const std::string& text) {
  uint64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size() || id == 0)
    return usage(verb, fmt::format("\"{}\" is not a job number", text));
  return id;
}

}  // namespace

Result<Command> parse_command(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.find('\n') != std::string_view::npos)
    return Status::Error(EINVAL, "one command per write, please (a newline cannot be part of an argument)");
  if (line.find('\0') != std::string_view::npos)
    return Status::Error(EINVAL, "the command holds a NUL byte, which no argument can contain");
  Result<std::vector<std::string>> words = split(line);
  if (!words.ok()) return words.status();
  std::vector<std::string>& w = *words;
  if (w.empty()) return Status::Error(EINVAL, "empty command");
  Command c;
  c.verb = w[0];
  const size_t args = w.size() - 1;
  if (c.verb == "move") {
    if (args != 2) return usage(c.verb, fmt::format("move takes 2 arguments, not {}", args));
    size_t colon = w[1].find(':');
    c.lv = w[1].substr(0, colon);
    VGFS_RETURN_IF_ERROR(check_name("LV", c.lv).prefixed("move"));
    if (colon != std::string::npos) {
      Result<IndexRange> r = parse_range(w[1].substr(colon + 1));
      if (!r.ok()) return usage(c.verb, r.status().message());
      c.les = *r;
    }
    colon = w[2].find(':');
    c.pv = w[2].substr(0, colon);
    VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed("move"));
    if (colon != std::string::npos) {
      Result<IndexRange> r = parse_range(w[2].substr(colon + 1));
      if (!r.ok() || r->count != 1) return usage(c.verb, fmt::format("bad first PE \"{}\"", w[2].substr(colon + 1)));
      c.pe = r->first;
    }
  } else if (c.verb == "pvmove") {
    if (args < 1) return usage(c.verb, "pvmove needs the PV to empty");
    c.pv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed("pvmove"));
    for (size_t i = 2; i < w.size(); ++i) {
      VGFS_RETURN_IF_ERROR(check_name("PV", w[i]).prefixed("pvmove"));
      c.dest_pvs.push_back(w[i]);
    }
  } else if (c.verb == "abort" || c.verb == "pause" || c.verb == "resume") {
    if (args != 1) return usage(c.verb, fmt::format("{} takes one job number", c.verb));
    Result<uint64_t> id = job_id(c.verb, w[1]);
    if (!id.ok()) return id.status();
    c.job = *id;
  } else if (c.verb == "limit") {
    if (args != 2) return usage(c.verb, "limit takes a job number and a rate");
    Result<uint64_t> id = job_id(c.verb, w[1]);
    if (!id.ok()) return id.status();
    c.job = *id;
    std::string rate = w[2];
    if (rate.size() > 2 && rate.substr(rate.size() - 2) == "/s") rate.resize(rate.size() - 2);
    Result<uint64_t> r = parse_size(rate);
    if (!r.ok()) return usage(c.verb, r.status().message());
    c.rate = *r;
  } else if (c.verb == "lvcreate" || c.verb == "lvextend" || c.verb == "lvreduce") {
    const bool create = c.verb == "lvcreate";
    if (args < 2 || (!create && args != 2)) return usage(c.verb, fmt::format("{} takes a name and a size", c.verb));
    c.lv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("LV", c.lv).prefixed(c.verb));
    Result<uint64_t> size = parse_size(w[2]);
    if (!size.ok()) return usage(c.verb, size.status().message());
    if (*size == 0) return usage(c.verb, "the size must not be 0");
    c.size = *size;
    for (size_t i = 3; i < w.size(); ++i) {
      VGFS_RETURN_IF_ERROR(check_name("PV", w[i]).prefixed(c.verb));
      c.dest_pvs.push_back(w[i]);
    }
  } else if (c.verb == "lvremove") {
    if (args != 1) return usage(c.verb, "lvremove takes one LV name");
    c.lv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("LV", c.lv).prefixed(c.verb));
  } else if (c.verb == "lvrename") {
    if (args != 2) return usage(c.verb, "lvrename takes the old and the new name");
    c.lv = w[1];
    c.new_name = w[2];
    VGFS_RETURN_IF_ERROR(check_name("LV", c.lv).prefixed(c.verb));
    VGFS_RETURN_IF_ERROR(check_name("LV", c.new_name).prefixed(c.verb));
  } else if (c.verb == "pvadd") {
    if (args < 1 || args > 2) return usage(c.verb, "pvadd takes a path and an optional name");
    c.path = w[1];
    if (c.path.empty() || c.path[0] != '/') return usage(c.verb, fmt::format("\"{}\" is not an absolute path", c.path));
    if (args == 2) {
      c.pv = w[2];
      VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed(c.verb));
    }
  } else if (c.verb == "pvremove") {
    if (args != 1) return usage(c.verb, "pvremove takes one PV name");
    c.pv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed(c.verb));
  } else {
    return Status::Error(EINVAL, fmt::format("unknown command \"{}\"; commands: move, pvmove, abort, pause, "
                                             "resume, limit, lvcreate, lvextend, lvreduce, lvremove, lvrename, "
                                             "pvadd, pvremove", c.verb));
  }
  return c;
}

Reply Reply::from(const Status& status) {
  if (status.ok()) return ok("");
  return Reply{status.code(), "error: " + printable(status.message()) + "\n"};
}

// Replies are one line a terminal may show: no byte of a path or reason
// can end it early or drive the terminal.
Reply Reply::ok(std::string_view what) {
  return Reply{0, what.empty() ? std::string("ok\n") : fmt::format("ok {}\n", printable(what))};
}

Result<std::string> quote_argument(std::string_view arg) {
  if (arg.find('\n') != std::string_view::npos)
    return Status::Error(EINVAL, fmt::format("\"{}\" contains a newline, which the control protocol cannot carry",
                                             printable(arg)));
  if (arg.find('\0') != std::string_view::npos)
    return Status::Error(EINVAL, fmt::format("\"{}\" contains a NUL byte, which the control protocol cannot carry",
                                             printable(arg)));
  bool plain = !arg.empty();
  for (char c : arg)
    if (c == ' ' || c == '\t' || c == '"' || c == '\\' || c == '\r') plain = false;
  if (plain) return std::string(arg);
  std::string out = "\"";
  for (char c : arg) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

namespace {

Reply run(VolumeManager& manager, const Command& c) {
  if (c.verb == "move" || c.verb == "pvmove") {
    std::string note;
    Result<std::vector<uint64_t>> ids =
        c.verb == "move" ? manager.move(c.lv, c.les, c.pv, c.pe) : manager.pvmove(c.pv, c.dest_pvs, &note);
    if (!ids.ok()) return Reply::from(ids.status());
    std::string text = ids->size() == 1 ? fmt::format("job {}", (*ids)[0]) : fmt::format("jobs {}", fmt::join(*ids, ","));
    return Reply::ok(note.empty() ? text : fmt::format("{} (partial: {})", text, note));
  }
  if (c.verb == "abort") return Reply::from(manager.abort(c.job));
  if (c.verb == "pause") return Reply::from(manager.pause(c.job));
  if (c.verb == "resume") return Reply::from(manager.resume(c.job));
  if (c.verb == "limit") return Reply::from(manager.limit(c.job, c.rate));
  Result<std::string> done = Status::Error(EINVAL, fmt::format("unknown command \"{}\"", c.verb));
  if (c.verb == "lvcreate") done = manager.lvcreate(c.lv, c.size, c.dest_pvs);
  if (c.verb == "lvextend") done = manager.lvextend(c.lv, c.size);
  if (c.verb == "lvreduce") done = manager.lvreduce(c.lv, c.size);
  if (c.verb == "lvremove") done = manager.lvremove(c.lv);
  if (c.verb == "lvrename") done = manager.lvrename(c.lv, c.new_name);
  if (c.verb == "pvadd") done = manager.pvadd(c.path, c.pv);
  if (c.verb == "pvremove") done = manager.pvremove(c.pv);
  if (!done.ok()) return Reply::from(done.status());
  return Reply::ok(*done);
}

}  // namespace

// A commit that counted but did not reach every PV, or whose archive could
// not be written, still answers ok (the change holds), with the problems:
// "ok ... (warning: ...; ...)".
Reply execute(VolumeManager& manager, const Command& c) {
  VolumeManager::CommitWarnings warnings;
  Reply reply = run(manager, c);
  if (reply.code == 0 && !warnings.list().empty()) {
    reply.text.pop_back();  // the newline
    reply.text += " (warning: " + printable(fmt::format("{}", fmt::join(warnings.list(), "; "))) + ")\n";
  }
  return reply;
}

}  // namespace vgfs
