// The control-file protocol (include/vgfs/control.h).
#include "vgfs/control.h"

#include <charconv>
#include <type_traits>
#include <variant>
#include <fmt/format.h>

#include "vgfs/escape.h"
#include "vgfs/nbd_uri.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

namespace {

constexpr std::string_view kUsage[] = {
    "move LV[:LE_FIRST-LE_LAST] PV[:PE_FIRST] [limit=RATE]",
    "pvmove PV [DEST_PV ...] [limit=RATE]",
    "abort JOB",
    "finish 0 [limit=RATE]",
    "pause JOB",
    "resume JOB",
    "limit JOB RATE",
    "lvcreate NAME SIZE [PV ...] [uid=N] [gid=N] [mode=OCTAL]",
    "lvextend NAME SIZE",
    "lvreduce NAME SIZE",
    "lvremove NAME",
    "lvrename OLD NEW",
    "pvadd PATH [NAME] [force=yes]",
    "pvremove PV",
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

// A job number; 0 (kForeignMoveJob, another tool's unfinished move) only
// where `zero_ok`: abort and finish.
Result<uint64_t> job_id(const std::string& verb, const std::string& text, bool zero_ok = false) {
  uint64_t id = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || p != text.data() + text.size() || (id == 0 && !zero_ok))
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
  const std::string verb = w[0];
  // move and pvmove take options after their arguments: the trailing words
  // holding '=', which no LV or PV name can hold.
  uint64_t limit = 0;
  if (verb == "move" || verb == "pvmove" || verb == "finish") {
    bool seen = false;
    while (w.size() > 1 && w.back().find('=') != std::string::npos) {
      const std::string word = std::move(w.back());
      w.pop_back();
      const size_t eq = word.find('=');
      if (word.substr(0, eq) != "limit" || seen)
        return usage(verb, fmt::format("unknown or repeated option \"{}\" (the one option is limit=RATE)", word));
      seen = true;
      std::string rate = word.substr(eq + 1);
      if (rate.size() > 2 && rate.substr(rate.size() - 2) == "/s") rate.resize(rate.size() - 2);
      Result<uint64_t> r = parse_size(rate);
      if (!r.ok()) return usage(verb, r.status().message());
      limit = *r;
    }
  }
  // lvcreate's options: uid=N gid=N mode=OCTAL, each at most once.
  std::optional<uint32_t> owner_uid, owner_gid, owner_mode;
  if (verb == "lvcreate") {
    while (w.size() > 1 && w.back().find('=') != std::string::npos) {
      const std::string word = std::move(w.back());
      w.pop_back();
      const size_t eq = word.find('=');
      const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
      std::optional<uint32_t>* slot = key == "uid" ? &owner_uid : key == "gid" ? &owner_gid : key == "mode" ? &owner_mode : nullptr;
      if (slot == nullptr || slot->has_value())
        return usage(verb, fmt::format("unknown or repeated option \"{}\" (the options are uid=N, gid=N, mode=OCTAL)", word));
      const int base = key == "mode" ? 8 : 10;
      uint32_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n, base);
      if (value.empty() || ec != std::errc() || p != value.data() + value.size() || (base == 8 && n > 0777) ||
          (base == 10 && n == UINT32_MAX))
        return usage(verb, base == 8 ? fmt::format("bad mode \"{}\" (octal permission bits like 0640, at most 0777)", value)
                                     : fmt::format("bad {} \"{}\" (a number from 0 to 4294967294)", key, value));
      *slot = n;
    }
  }
  const size_t args = w.size() - 1;
  if (verb == "move") {
    cmd::Move c;
    if (args != 2) return usage(verb, fmt::format("move takes 2 arguments, not {}", args));
    size_t colon = w[1].find(':');
    c.lv = w[1].substr(0, colon);
    VGFS_RETURN_IF_ERROR(check_name("LV", c.lv).prefixed("move"));
    if (colon != std::string::npos) {
      Result<IndexRange> r = parse_range(w[1].substr(colon + 1));
      if (!r.ok()) return usage(verb, r.status().message());
      c.les = *r;
    }
    colon = w[2].find(':');
    c.pv = w[2].substr(0, colon);
    VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed("move"));
    if (colon != std::string::npos) {
      Result<IndexRange> r = parse_range(w[2].substr(colon + 1));
      if (!r.ok() || r->count != 1) return usage(verb, fmt::format("bad first PE \"{}\"", w[2].substr(colon + 1)));
      c.pe = r->first;
    }
    c.limit = limit;
    return Command(std::move(c));
  }
  if (verb == "pvmove") {
    cmd::Pvmove c;
    if (args < 1) return usage(verb, "pvmove needs the PV to empty");
    c.pv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("PV", c.pv).prefixed("pvmove"));
    for (size_t i = 2; i < w.size(); ++i) {
      VGFS_RETURN_IF_ERROR(check_name("PV", w[i]).prefixed("pvmove"));
      c.destinations.push_back(w[i]);
    }
    c.limit = limit;
    return Command(std::move(c));
  }
  if (verb == "finish") {
    if (args != 1) return usage(verb, "finish takes one job number");
    Result<uint64_t> id = job_id(verb, w[1], true);
    if (!id.ok()) return id.status();
    if (*id != 0)
      return usage(verb, fmt::format("job {} is vgfs's own and finishes by itself; finish takes job 0, a move "
                                     "another tool left unfinished", *id));
    return Command(cmd::Finish{*id, limit});
  }
  if (verb == "abort" || verb == "pause" || verb == "resume") {
    if (args != 1) return usage(verb, fmt::format("{} takes one job number", verb));
    Result<uint64_t> id = job_id(verb, w[1], verb == "abort");
    if (!id.ok()) return id.status();
    if (verb == "abort") return Command(cmd::Abort{*id});
    if (verb == "pause") return Command(cmd::Pause{*id});
    return Command(cmd::Resume{*id});
  }
  if (verb == "limit") {
    if (args != 2) return usage(verb, "limit takes a job number and a rate");
    Result<uint64_t> id = job_id(verb, w[1]);
    if (!id.ok()) return id.status();
    std::string rate = w[2];
    if (rate.size() > 2 && rate.substr(rate.size() - 2) == "/s") rate.resize(rate.size() - 2);
    Result<uint64_t> r = parse_size(rate);
    if (!r.ok()) return usage(verb, r.status().message());
    return Command(cmd::Limit{*id, *r});
  }
  if (verb == "lvcreate" || verb == "lvextend" || verb == "lvreduce") {
    const bool create = verb == "lvcreate";
    if (args < 2 || (!create && args != 2)) return usage(verb, fmt::format("{} takes a name and a size", verb));
    const std::string& lv = w[1];
    VGFS_RETURN_IF_ERROR(check_name("LV", lv).prefixed(verb));
    Result<uint64_t> size = parse_size(w[2]);
    if (!size.ok()) return usage(verb, size.status().message());
    if (*size == 0) return usage(verb, "the size must not be 0");
    std::vector<std::string> pvs;
    for (size_t i = 3; i < w.size(); ++i) {
      VGFS_RETURN_IF_ERROR(check_name("PV", w[i]).prefixed(verb));
      pvs.push_back(w[i]);
    }
    if (create) return Command(cmd::Lvcreate{lv, *size, std::move(pvs), owner_uid, owner_gid, owner_mode});
    if (verb == "lvextend") return Command(cmd::Lvextend{lv, *size});
    return Command(cmd::Lvreduce{lv, *size});
  }
  if (verb == "lvremove") {
    if (args != 1) return usage(verb, "lvremove takes one LV name");
    VGFS_RETURN_IF_ERROR(check_name("LV", w[1]).prefixed(verb));
    return Command(cmd::Lvremove{w[1]});
  }
  if (verb == "lvrename") {
    if (args != 2) return usage(verb, "lvrename takes the old and the new name");
    VGFS_RETURN_IF_ERROR(check_name("LV", w[1]).prefixed(verb));
    VGFS_RETURN_IF_ERROR(check_name("LV", w[2]).prefixed(verb));
    return Command(cmd::Lvrename{w[1], w[2]});
  }
  if (verb == "pvadd") {
    cmd::Pvadd c;
    // force=yes, after the path: a PV name cannot hold '=', a path can.
    if (w.size() > 2 && w.back() == "force=yes") {
      c.force = true;
      w.pop_back();
    }
    const size_t args = w.size() - 1;
    if (args < 1 || args > 2) return usage(verb, "pvadd takes a path, an optional name and force=yes");
    c.path = w[1];
    if ((c.path.empty() || c.path[0] != '/') && !is_nbd_uri(c.path))
      return usage(verb, fmt::format("\"{}\" is not an absolute path or an NBD URI", c.path));
    if (args == 2) {
      c.name = w[2];
      VGFS_RETURN_IF_ERROR(check_name("PV", c.name).prefixed(verb));
    }
    return Command(std::move(c));
  }
  if (verb == "pvremove") {
    if (args != 1) return usage(verb, "pvremove takes one PV name");
    VGFS_RETURN_IF_ERROR(check_name("PV", w[1]).prefixed(verb));
    return Command(cmd::Pvremove{w[1]});
  }
  return Status::Error(EINVAL, fmt::format("unknown command \"{}\"; commands: move, pvmove, abort, finish, "
                                           "pause, resume, limit, lvcreate, lvextend, lvreduce, lvremove, lvrename, "
                                           "pvadd, pvremove", verb));
}

std::string_view verb(const Command& command) {
  return std::visit([](const auto& c) { return std::decay_t<decltype(c)>::kVerb; }, command);
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

// "N extents (SIZE)", with the rounding said when there was one.
std::string size_note(const LvSized& r) {
  std::string note = fmt::format("{} extents ({})", r.extents, format_size(r.extents * r.extent_size));
  if (r.extents * r.extent_size != r.asked) note += fmt::format(", rounded up from {}", format_size(r.asked));
  return note;
}

std::string jobs_text(const JobsStarted& s) {
  return s.jobs.size() == 1 ? fmt::format("job {}", s.jobs[0]) : fmt::format("jobs {}", fmt::join(s.jobs, ","));
}

}  // namespace

std::string ok_text(const cmd::Move&, const JobsStarted& started) { return jobs_text(started); }

std::string ok_text(const cmd::Pvmove& c, const JobsStarted& started) {
  if (!started.partial()) return jobs_text(started);
  return fmt::format("{} (partial: {} of the {} runs on PV {} move now: its migration area holds no more job records; "
                     "run pvmove {} again when these jobs end)",
                     jobs_text(started), started.runs_moving, started.runs, c.pv, c.pv);
}

std::string ok_text(const cmd::Finish&, const JobsStarted& started) { return jobs_text(started); }

std::string ok_text(const cmd::Lvcreate&, const LvSized& r) {
  return fmt::format("LV {} created: {}", r.lv, size_note(r));
}
std::string ok_text(const cmd::Lvextend&, const LvSized& r) {
  return fmt::format("LV {} extended to {}", r.lv, size_note(r));
}
std::string ok_text(const cmd::Lvreduce&, const LvSized& r) {
  return fmt::format("LV {} reduced to {}", r.lv, size_note(r));
}
std::string ok_text(const cmd::Lvremove& c) { return fmt::format("LV {} removed", c.lv); }
std::string ok_text(const cmd::Lvrename& c) { return fmt::format("LV {} renamed to {}", c.from, c.to); }
std::string ok_text(const cmd::Pvadd&, const PvAdded& r) {
  return fmt::format("PV {} added: {} extents of {}", r.pv, r.extents, format_size(r.extent_size));
}
std::string ok_text(const cmd::Pvremove&, const PvRemoved& r) {
  return fmt::format("PV {} removed from VG {}; take it out of the config file too", r.pv, r.vg);
}

namespace {

// One overload per verb: the manager call it makes. Each returns a Status
// (the reply is a bare "ok") or the manager's typed result.
Status run(VolumeManager& m, const cmd::Abort& c) { return m.abort(c.job); }
Result<JobsStarted> run(VolumeManager& m, const cmd::Finish& c) { (void)c.job; return m.finish_foreign_move(c.limit); }
Status run(VolumeManager& m, const cmd::Pause& c) { return m.pause(c.job); }
Status run(VolumeManager& m, const cmd::Resume& c) { return m.resume(c.job); }
Status run(VolumeManager& m, const cmd::Limit& c) { return m.limit(c.job, c.rate); }
Result<JobsStarted> run(VolumeManager& m, const cmd::Move& c) { return m.move(c.lv, c.les, c.pv, c.pe, c.limit); }
Result<JobsStarted> run(VolumeManager& m, const cmd::Pvmove& c) { return m.pvmove(c.pv, c.destinations, c.limit); }
Result<LvSized> run(VolumeManager& m, const cmd::Lvcreate& c) {
  return m.lvcreate(c.lv, c.size, c.pvs, LvOwnership{c.mode, c.uid, c.gid});
}
Result<LvSized> run(VolumeManager& m, const cmd::Lvextend& c) { return m.lvextend(c.lv, c.size); }
Result<LvSized> run(VolumeManager& m, const cmd::Lvreduce& c) { return m.lvreduce(c.lv, c.size); }
Status run(VolumeManager& m, const cmd::Lvremove& c) { return m.lvremove(c.lv); }
Status run(VolumeManager& m, const cmd::Lvrename& c) { return m.lvrename(c.from, c.to); }
Result<PvAdded> run(VolumeManager& m, const cmd::Pvadd& c) { return m.pvadd(c.path, c.name, c.force); }
Result<PvRemoved> run(VolumeManager& m, const cmd::Pvremove& c) { return m.pvremove(c.pv); }

template <typename C>
Reply reply(const C& c, const Status& done) {
  if (!done.ok()) return Reply::from(done);
  if constexpr (requires { ok_text(c); }) return Reply::ok(ok_text(c));
  else return Reply::ok("");
}

template <typename C, typename T>
Reply reply(const C& c, const Result<T>& done) {
  if (!done.ok()) return Reply::from(done.status());
  return Reply::ok(ok_text(c, *done));
}

}  // namespace

// A commit that counted but did not reach every PV, or whose archive could
// not be written, still answers ok (the change holds), with the problems:
// "ok ... (warning: ...; ...)".
Reply execute(VolumeManager& manager, const Command& command) {
  VolumeManager::CommitWarnings warnings;
  Reply reply = std::visit([&](const auto& c) { return vgfs::reply(c, run(manager, c)); }, command);
  if (reply.code == 0 && !warnings.list().empty()) {
    reply.text.pop_back();  // the newline
    reply.text += " (warning: " + printable(fmt::format("{}", fmt::join(warnings.list(), "; "))) + ")\n";
  }
  return reply;
}

}  // namespace vgfs
