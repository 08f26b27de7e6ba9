// A test-only program (built by meson, not installed) that applies vgfs's
// resolution of LVM2's unfinished pvmove (include/vgfs/lvm2_pvmove.h) to a
// metadata text file, for integration/test_lvm2_pvmove.py: LVM2 makes the
// stuck pvmove, this program rewrites the text, LVM2's vgcfgrestore commits
// it.
//
//   lvm2_pvmove_tool show IN                 the move and its copy list as JSON
//   lvm2_pvmove_tool finish IN OUT [all|none|I,J,...]   pieces copied (default all)
//   lvm2_pvmove_tool abort IN OUT
//
// Errors: one line on stderr, exit status 1, OUT not written.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "vgfs/lvm2_metadata.h"
#include "vgfs/lvm2_pvmove.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

int die(const std::string& what) {
  std::fprintf(stderr, "lvm2_pvmove_tool: %s\n", what.c_str());
  return 1;
}

nlohmann::json area(const StripeArea& a) { return {{"pv", a.pv}, {"pe", a.pe}}; }

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() < 2) return die("usage: show IN | finish IN OUT [all|none|I,J,...] | abort IN OUT");
  std::ifstream in(args[1], std::ios::binary);
  if (!in) return die(fmt::format("{}: cannot open", args[1]));
  std::stringstream text;
  text << in.rdbuf();
  Result<Lvm2Vg> vg = read_vg_text(text.str(), args[1]);
  if (!vg.ok()) return die(vg.status().message());
  Result<Pvmove> move = find_pvmove(*vg);
  if (!move.ok()) return die(move.status().message());

  if (args[0] == "show") {
    nlohmann::json out = {{"lv", move->lv}, {"users", move->users}};
    for (const PvmovePiece& p : move->pieces)
      out["pieces"].push_back({{"segment", p.segment},
                               {"le", p.le},
                               {"extent_count", p.extent_count},
                               {"extents_moved", p.extents_moved},
                               {"source", area(p.source)},
                               {"destination", area(p.destination)},
                               {"user", {{"lv", p.user.lv}, {"segment", p.user.segment}, {"stripe", p.user.stripe}}}});
    out["copies"] = nlohmann::json::array();
    for (const PvmoveCopy& c : pvmove_copy_list(*move))
      out["copies"].push_back(
          {{"piece", c.piece}, {"source", area(c.source)}, {"destination", area(c.destination)}, {"count", c.count}});
    std::cout << out.dump(1) << "\n";
    return 0;
  }
  if (args.size() < 3) return die("finish and abort need IN and OUT");
  Result<ConfigTree> result = Status::Error(EINVAL, "unknown verb " + args[0]);
  if (args[0] == "abort") {
    result = abort_pvmove(vg->tree, *move);
  } else if (args[0] == "finish") {
    const std::string which = args.size() > 3 ? args[3] : "all";
    std::vector<bool> copied(move->pieces.size(), which == "all");
    if (which != "all" && which != "none") {
      std::stringstream list(which);
      for (std::string item; std::getline(list, item, ',');) {
        size_t i = 0;
        try {
          i = std::stoul(item);
        } catch (...) {
          return die("bad piece number " + item);
        }
        if (i >= copied.size()) return die("no piece " + item);
        copied[i] = true;
      }
    }
    result = finish_pvmove(vg->tree, *move, copied);
  }
  if (!result.ok()) return die(result.status().message());
  std::ofstream out(args[2], std::ios::binary | std::ios::trunc);
  out << emit_config(*result);
  if (!out.flush()) return die(fmt::format("{}: cannot write", args[2]));
  return 0;
}
