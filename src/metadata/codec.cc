// The metadata text: YAML, as held in every PV's metadata slots and printed
// by `vgfs dump` (see encode_metadata/decode_metadata in
// include/vgfs/metadata.h and docs/format.md).
//
// Each LV's map is one literal block with a run per line in the LE→PE form
// "LE-range PV PE-range" (docs/records.md), so a VG with many runs stays compact and quick to
// parse.
#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>

#include "vgfs/metadata.h"

namespace vgfs {

namespace {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
// U+10FFFF, no noncharacters. yaml-cpp's emitter replaces anything else with
// U+FFFD, so only this goes into the text as it is.
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    // Noncharacters, which yaml-cpp's emitter also replaces.
    if ((cp & 0xFFFE) == 0xFFFE || (cp >= 0xFDD0 && cp <= 0xFDEF)) return false;
    i += n;
  }
  return true;
}

// A string the text must carry byte for byte (paths, reasons): double-quoted
// when it is UTF-8, otherwise `!!binary` base64, which YAML defines for
// exactly this and which decodes back to the same bytes.
void emit_bytes(YAML::Emitter& out, const std::string& s) {
  if (valid_utf8(s))
    out << YAML::DoubleQuoted << s;
  else
    out << YAML::Binary(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

// Kept keys as a map of strings, only when there are any.
void emit_kept(YAML::Emitter& out, const KeptKeys& kept) {
  if (kept.empty()) return;
  out << YAML::Key << "kept" << YAML::Value << YAML::BeginMap;
  for (const auto& [key, value] : kept) {
    out << YAML::Key << key << YAML::Value;
    emit_bytes(out, value);
  }
  out << YAML::EndMap;
}

// One line of an LV's extents block: "LE-range PV PE-range" for a linear
// run; "LE-range striped STRIPE_SIZE PV PE-range PV PE-range ..." (a leg per
// pair) for a striped one. A linear line has exactly three words, a striped
// one at least seven, so the form is never ambiguous, even with a PV named
// "striped".
std::string format_run_line(const VgMetadata& md, const MapRun& r) {
  if (!r.striped()) return fmt::format("{} {} {}\n", format_range(r.le, r.count), md.pvs[r.pv].name, format_range(r.pe, r.count));
  std::string line = fmt::format("{} striped {}", format_range(r.le, r.count), r.stripe_size);
  for (uint32_t s = 0; s < r.stripe_count(); ++s) {
    const StripeLeg leg = r.leg(s);
    line += fmt::format(" {} {}", md.pvs[leg.pv].name, format_range(leg.pe, r.leg_extents()));
  }
  return line + "\n";
}

}  // namespace

std::string encode_metadata(const VgMetadata& md) {
  YAML::Emitter out;
  out << YAML::Comment("vgfs metadata; edit only through vgfs commands") << YAML::BeginMap;
  out << YAML::Key << "vg" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << md.name;
  out << YAML::Key << "uuid" << YAML::Value << format_uuid(md.uuid);
  out << YAML::Key << "extent_size" << YAML::Value << md.extent_size;
  out << YAML::Key << "region_size" << YAML::Value << md.region_size;
  out << YAML::Key << "seqno" << YAML::Value << md.seqno;
  out << YAML::Key << "next_job_id" << YAML::Value << md.next_job_id;
  emit_kept(out, md.kept);
  out << YAML::EndMap;

  out << YAML::Key << "pvs" << YAML::Value << YAML::BeginSeq;
  for (const PvInfo& pv : md.pvs) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << pv.name;
    out << YAML::Key << "uuid" << YAML::Value << format_uuid(pv.uuid);
    out << YAML::Key << "path" << YAML::Value;
    emit_bytes(out, pv.path);
    out << YAML::Key << "pe_start" << YAML::Value << pv.pe_start;
    out << YAML::Key << "pe_count" << YAML::Value << pv.pe_count;
    emit_kept(out, pv.kept);
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "lvs" << YAML::Value << YAML::BeginSeq;
  for (const LvInfo& lv : md.lvs) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << lv.name;
    out << YAML::Key << "uuid" << YAML::Value << format_uuid(lv.uuid);
    out << YAML::Key << "mode" << YAML::Value << YAML::DoubleQuoted << fmt::format("{:04o}", lv.mode);
    // Keys added after version 1's first texts are written only when they
    // differ from what their absence means, so such LVs encode as before.
    if (lv.uid) out << YAML::Key << "uid" << YAML::Value << *lv.uid;
    if (lv.gid) out << YAML::Key << "gid" << YAML::Value << *lv.gid;
    if (lv.hidden) out << YAML::Key << "hidden" << YAML::Value << true;
    emit_kept(out, lv.kept);
    // The run block last: YAML ends a literal block that another key follows
    // with a blank line.
    bool any_kept = false;
    for (const MapRun& r : lv.map.runs()) any_kept = any_kept || !r.kept.empty();
    if (any_kept) {
      out << YAML::Key << "run_kept" << YAML::Value << YAML::BeginSeq;
      for (const MapRun& r : lv.map.runs()) {
        if (r.kept.empty()) continue;
        out << YAML::BeginMap << YAML::Key << "le" << YAML::Value << r.le;
        emit_kept(out, r.kept);
        out << YAML::EndMap;
      }
      out << YAML::EndSeq;
    }
    std::string runs;
    for (const MapRun& r : lv.map.runs()) runs += format_run_line(md, r);
    out << YAML::Key << "extents" << YAML::Value << YAML::Literal << runs;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  if (!md.jobs.empty()) {
    out << YAML::Key << "jobs" << YAML::Value << YAML::BeginSeq;
    for (const JobInfo& j : md.jobs) {
      out << YAML::Flow << YAML::BeginMap;
      out << YAML::Key << "id" << YAML::Value << j.id;
      out << YAML::Key << "lv" << YAML::Value << j.lv;
      out << YAML::Key << "le" << YAML::Value << format_range(j.le, j.count);
      if (j.leg) out << YAML::Key << "leg" << YAML::Value << *j.leg;  // only leg jobs: older texts have none
      out << YAML::Key << "source" << YAML::Value << fmt::format("{} {}", md.pvs[j.src_pv].name, j.src_pe);
      out << YAML::Key << "destination" << YAML::Value << fmt::format("{} {}", md.pvs[j.dst_pv].name, j.dst_pe);
      out << YAML::Key << "state" << YAML::Value << std::string(job_state_name(j.state));
      out << YAML::Key << "reason" << YAML::Value;
      emit_bytes(out, j.reason);
      out << YAML::Key << "record" << YAML::Value << fmt::format("{} {}", j.record_offset, j.record_size);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

// A parsed YAML node of the metadata text. The text is turned into this
// small tree by TreeBuilder (yaml-cpp's event parser) instead of
// YAML::Node: a YAML::Node costs about 450 bytes, and an alias would be
// materialised once per use. Here every node comes from text it consumed.
struct YNode {
  enum Kind : uint8_t { kNull, kScalar, kSequence, kMap };
  Kind kind = kNull;
  std::string value;          // scalars; `!!binary` ones already decoded
  std::vector<YNode> items;   // sequence items; maps: key, value, key, value...
  YAML::Mark mark;

  // The value of `key` in a map, or nullptr.
  const YNode* get(std::string_view key) const {
    if (kind != kMap) return nullptr;
    for (size_t i = 0; i + 1 < items.size(); i += 2)
      if (items[i].kind == kScalar && items[i].value == key) return &items[i + 1];
    return nullptr;
  }
  bool is_scalar() const { return kind == kScalar; }
};

// Builds a YNode tree from parser events. Refuses what vgfs never writes
// and what would let a small text cost a lot: anchors and aliases (an alias
// bomb expands kilobytes into gigabytes), more than one document, nesting
// deeper than kMaxDepth, and more nodes than the text can honestly hold
// (vgfs's own texts spend over 6 bytes per node).
class TreeBuilder : public YAML::EventHandler {
 public:
  static constexpr size_t kMaxDepth = 8;
  explicit TreeBuilder(size_t text_size) : max_nodes_(text_size / 4 + 64) {}

  YNode& root() { return root_; }
  bool has_root() const { return documents_ > 0; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0) throw YAML::ParserException(mark, "more than one YAML document");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { add(mark, anchor, YNode::kNull); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw YAML::ParserException(mark, "YAML aliases are not allowed in vgfs metadata");
  }
  void OnAnchor(const YAML::Mark& mark, const std::string&) override {
    throw YAML::ParserException(mark, "YAML anchors are not allowed in vgfs metadata");
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YNode& n = add(mark, anchor, YNode::kScalar);
    if (tag == "tag:yaml.org,2002:binary") {
      std::vector<unsigned char> bytes = YAML::DecodeBase64(value);
      bool blank = std::all_of(value.begin(), value.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
      if (bytes.empty() && !blank) throw YAML::ParserException(mark, "bad base64 in a !!binary value");
      n.value.assign(bytes.begin(), bytes.end());
    } else {
      n.value = value;
    }
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(add(mark, anchor, YNode::kSequence));
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(add(mark, anchor, YNode::kMap));
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  YNode& add(const YAML::Mark& mark, YAML::anchor_t anchor, YNode::Kind kind) {
    if (anchor != YAML::NullAnchor) throw YAML::ParserException(mark, "YAML anchors are not allowed in vgfs metadata");
    if (++nodes_ > max_nodes_)
      throw YAML::ParserException(mark, fmt::format("more YAML nodes than {} bytes of vgfs metadata can hold",
                                                    max_nodes_ * 4));
    // Only the innermost open node grows, so the pointers below it on the
    // stack stay valid.
    YNode& n = stack_.empty() ? root_ : stack_.back()->items.emplace_back();
    n.kind = kind;
    n.mark = mark;
    return n;
  }
  void open(YNode& n) {
    if (stack_.size() >= kMaxDepth) throw YAML::ParserException(n.mark, "YAML nesting is deeper than vgfs metadata");
    stack_.push_back(&n);
  }

  const size_t max_nodes_;
  size_t nodes_ = 0;
  int documents_ = 0;
  YNode root_;
  std::vector<YNode*> stack_;
};

// Reads the fields of one YAML map, rejecting unknown and repeated keys.
class Fields {
 public:
  Fields(const YNode* node, std::string where, std::string_view origin)
      : node_(node), where_(std::move(where)), origin_(origin) {}

  Status check(std::initializer_list<std::string_view> known) const {
    if (!node_ || node_->kind != YNode::kMap) return error("is not a mapping");
    std::set<std::string_view> seen;
    for (size_t i = 0; i + 1 < node_->items.size(); i += 2) {
      const YNode& key = node_->items[i];
      if (!key.is_scalar()) return error("has a key that is not a plain string");
      if (std::find(known.begin(), known.end(), key.value) == known.end())
        return error(fmt::format("unknown key \"{}\"", printable(key.value)));
      if (!seen.insert(key.value).second) return error(fmt::format("repeats key \"{}\"", key.value));
    }
    return Status::Ok();
  }
  bool has(const char* key) const { return node_ && node_->get(key); }
  const YNode* get(const char* key) const { return node_ ? node_->get(key) : nullptr; }
  Result<std::string> str(const char* key) const {
    const YNode* v = get(key);
    if (!v || !v->is_scalar()) return error(fmt::format("missing key \"{}\"", key));
    return v->value;
  }
  Result<uint64_t> u64(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    uint64_t value = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
    if (ec != std::errc() || p != s->data() + s->size())
      return error(fmt::format("\"{}\" is not a whole number below 2^64: {}", key, printable(*s)));
    return value;
  }
  Result<Uuid> uuid(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    Result<Uuid> u = parse_uuid(*s);
    if (!u.ok()) return error(fmt::format("\"{}\" is not a UUID: {}", key, printable(*s)));
    return u;
  }
  Status error(const std::string& what) const {
    return Status::Error(EINVAL, fmt::format("{}: metadata {} {}", origin_, where_, what));
  }

 private:
  const YNode* node_;
  std::string where_;
  std::string_view origin_;
};

// "OFFSET SIZE", two whole numbers and one blank.
bool parse_two_u64(std::string_view text, uint64_t* a, uint64_t* b) {
  size_t sp = text.find(' ');
  if (sp == std::string_view::npos) return false;
  const char* end = text.data() + text.size();
  auto [p1, e1] = std::from_chars(text.data(), text.data() + sp, *a);
  auto [p2, e2] = std::from_chars(text.data() + sp + 1, end, *b);
  return e1 == std::errc() && p1 == text.data() + sp && sp > 0 && e2 == std::errc() && p2 == end &&
         sp + 1 < text.size();
}

// The words of a run line, split at single blanks (empty words included, so
// a doubled blank makes the line fail like any other stray byte).
std::vector<std::string_view> words(std::string_view text) {
  std::vector<std::string_view> out;
  for (size_t at = 0;;) {
    size_t sp = text.find(' ', at);
    out.push_back(text.substr(at, sp == std::string_view::npos ? std::string_view::npos : sp - at));
    if (sp == std::string_view::npos) return out;
    at = sp + 1;
  }
}

// One line of an LV's extents block (format_run_line). `kept` holds the
// keys run_kept lists for this LV by first LE; a run that has some is
// appended as a run of its own.
Status parse_run(std::string_view text, const std::unordered_map<std::string_view, uint32_t>& pvs, LvInfo* lv,
                 std::map<uint64_t, KeptKeys>* kept, const Fields& where) {
  const std::vector<std::string_view> w = words(text);
  const bool striped = w.size() >= 7 && w[1] == "striped" && w.size() % 2 == 1;
  if (w.size() != 3 && !striped)
    return where.error(fmt::format("run \"{}\" is not \"LE-range PV PE-range\" nor \"LE-range striped SIZE PV "
                                   "PE-range PV PE-range...\"", printable(text)));
  Result<IndexRange> le = parse_range(w[0]);
  if (!le.ok()) return where.error(fmt::format("run \"{}\" has a bad LE range", printable(text)));
  // Runs are contiguous and each fits a PV (validate() checks), so the LE
  // count of an LV can never wrap; refuse the one run that would.
  if (le->first != lv->map.extent_count() || le->count > UINT64_MAX - le->first)
    return where.error(fmt::format("run \"{}\" does not start at LE {}", printable(text), lv->map.extent_count()));
  MapRun run;
  run.count = le->count;
  const size_t first_leg = striped ? 3 : 1;
  const uint64_t legs = (w.size() - first_leg) / 2;
  if (striped) {
    auto [p, ec] = std::from_chars(w[2].data(), w[2].data() + w[2].size(), run.stripe_size);
    if (ec != std::errc() || p != w[2].data() + w[2].size() || le->count % legs != 0)
      return where.error(fmt::format("striped run \"{}\" has a bad stripe size or an LE count that is not a "
                                     "whole number per stripe", printable(text)));
  }
  for (size_t i = first_leg; i + 1 < w.size(); i += 2) {
    Result<IndexRange> pe = parse_range(w[i + 1]);
    if (!pe.ok() || pe->count != le->count / legs)
      return where.error(fmt::format("run \"{}\" has a PE range that is bad or not {} extents long", printable(text),
                                     le->count / legs));
    auto pv = pvs.find(w[i]);
    if (pv == pvs.end())
      return where.error(fmt::format("run \"{}\" names unknown PV {}", printable(text), printable(w[i])));
    if (i == first_leg) {
      run.pv = pv->second;
      run.pe = pe->first;
    } else {
      run.more_legs.push_back(StripeLeg{pv->second, pe->first});
    }
  }
  if (auto it = kept->find(le->first); it != kept->end()) {
    run.kept = std::move(it->second);
    kept->erase(it);
  }
  lv->map.append_run(std::move(run));
  return Status::Ok();
}

// A `kept` map of strings, in text order; none twice.
Status parse_kept(const Fields& f, KeptKeys* out) {
  const YNode* kept = f.get("kept");
  if (!kept) return Status::Ok();
  if (kept->kind != YNode::kMap) return f.error("\"kept\" is not a mapping");
  std::set<std::string_view> seen;
  for (size_t i = 0; i + 1 < kept->items.size(); i += 2) {
    const YNode& key = kept->items[i];
    const YNode& value = kept->items[i + 1];
    if (!key.is_scalar() || !value.is_scalar()) return f.error("\"kept\" holds something other than strings");
    if (!seen.insert(key.value).second) return f.error(fmt::format("\"kept\" repeats key \"{}\"", printable(key.value)));
    out->emplace_back(key.value, value.value);
  }
  return Status::Ok();
}

Result<VgMetadata> decode(const YNode& root, std::string_view origin) {
  VgMetadata md;
  Fields top(&root, "top level", origin);
  VGFS_RETURN_IF_ERROR(top.check({"vg", "pvs", "lvs", "jobs"}));
  Fields vg(root.get("vg"), "vg", origin);
  VGFS_RETURN_IF_ERROR(vg.check({"name", "uuid", "extent_size", "region_size", "seqno", "next_job_id", "kept"}));
  VGFS_ASSIGN_OR_RETURN(md.name, vg.str("name"));
  VGFS_ASSIGN_OR_RETURN(md.uuid, vg.uuid("uuid"));
  VGFS_ASSIGN_OR_RETURN(md.extent_size, vg.u64("extent_size"));
  VGFS_ASSIGN_OR_RETURN(md.region_size, vg.u64("region_size"));
  VGFS_ASSIGN_OR_RETURN(md.seqno, vg.u64("seqno"));
  if (vg.has("next_job_id")) VGFS_ASSIGN_OR_RETURN(md.next_job_id, vg.u64("next_job_id"));
  VGFS_RETURN_IF_ERROR(parse_kept(vg, &md.kept));

  const YNode* pvs = root.get("pvs");
  const YNode* lvs = root.get("lvs");
  if (!pvs || pvs->kind != YNode::kSequence) return top.error("has no \"pvs\" list");
  std::unordered_map<std::string_view, uint32_t> pv_index;  // find_pv is linear; runs may be many
  for (size_t i = 0; i < pvs->items.size(); ++i) {
    Fields f(&pvs->items[i], fmt::format("pvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "path", "pe_start", "pe_count", "kept"}));
    PvInfo pv;
    VGFS_ASSIGN_OR_RETURN(pv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(pv.uuid, f.uuid("uuid"));
    VGFS_ASSIGN_OR_RETURN(pv.path, f.str("path"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_start, f.u64("pe_start"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_count, f.u64("pe_count"));
    VGFS_RETURN_IF_ERROR(parse_kept(f, &pv.kept));
    md.pvs.push_back(std::move(pv));
  }
  if (md.pvs.size() > kMaxPvs) return top.error(fmt::format("lists {} PVs, more than {}", md.pvs.size(), kMaxPvs));
  for (size_t i = 0; i < md.pvs.size(); ++i)
    if (!pv_index.emplace(md.pvs[i].name, static_cast<uint32_t>(i)).second)
      return top.error(fmt::format("names PV {} twice", printable(md.pvs[i].name)));
  if (lvs && lvs->kind != YNode::kSequence && lvs->kind != YNode::kNull) return top.error("\"lvs\" is not a list");
  for (size_t i = 0; lvs && i < lvs->items.size(); ++i) {
    Fields f(&lvs->items[i], fmt::format("lvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "mode", "uid", "gid", "hidden", "extents", "run_kept", "kept"}));
    LvInfo lv;
    VGFS_ASSIGN_OR_RETURN(lv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(lv.uuid, f.uuid("uuid"));
    std::string mode;
    VGFS_ASSIGN_OR_RETURN(mode, f.str("mode"));
    auto [p, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), lv.mode, 8);
    if (ec != std::errc() || p != mode.data() + mode.size())
      return f.error(fmt::format("bad mode \"{}\"", printable(mode)));
    for (const char* key : {"uid", "gid"}) {
      if (!f.has(key)) continue;  // unset: the mounting user's
      uint64_t id = 0;
      VGFS_ASSIGN_OR_RETURN(id, f.u64(key));
      if (id > kMaxOwnerId) return f.error(fmt::format("\"{}\" {} is not an owner id", key, id));
      (key[0] == 'u' ? lv.uid : lv.gid) = static_cast<uint32_t>(id);
    }
    if (f.has("hidden")) {
      std::string hidden;
      VGFS_ASSIGN_OR_RETURN(hidden, f.str("hidden"));
      if (hidden != "true" && hidden != "false") return f.error(fmt::format("bad \"hidden\" \"{}\"", printable(hidden)));
      lv.hidden = hidden == "true";
    }
    VGFS_RETURN_IF_ERROR(parse_kept(f, &lv.kept));
    // Kept keys of runs, by the run's first LE.
    std::map<uint64_t, KeptKeys> run_kept;
    if (const YNode* list = f.get("run_kept")) {
      if (list->kind != YNode::kSequence) return f.error("\"run_kept\" is not a list");
      for (size_t k = 0; k < list->items.size(); ++k) {
        Fields item(&list->items[k], fmt::format("lvs[{}].run_kept[{}]", i, k), origin);
        VGFS_RETURN_IF_ERROR(item.check({"le", "kept"}));
        uint64_t le = 0;
        VGFS_ASSIGN_OR_RETURN(le, item.u64("le"));
        KeptKeys keys;
        VGFS_RETURN_IF_ERROR(parse_kept(item, &keys));
        if (keys.empty() || !run_kept.emplace(le, std::move(keys)).second)
          return item.error(fmt::format("keeps no keys, or repeats LE {}", le));
      }
    }
    // One literal block, a run per line (a YAML node per run would cost far
    // more time and memory for maps of many runs).
    const YNode* runs = f.get("extents");
    std::string joined;  // a list of run strings, as early builds wrote, reads too
    if (runs && runs->kind == YNode::kSequence)
      for (const YNode& run : runs->items) joined += (run.is_scalar() ? run.value : std::string("?")) + "\n";
    else if (runs && runs->is_scalar())
      joined = runs->value;
    else
      return f.error("has no \"extents\" block");
    std::string_view text = joined;
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string_view::npos) end = text.size();
      if (end > at) VGFS_RETURN_IF_ERROR(parse_run(text.substr(at, end - at), pv_index, &lv, &run_kept, f));
      at = end + 1;
    }
    if (!run_kept.empty())
      return f.error(fmt::format("\"run_kept\" names LE {}, where no run starts", run_kept.begin()->first));
    md.lvs.push_back(std::move(lv));
  }
  const YNode* jobs = root.get("jobs");
  if (jobs && jobs->kind != YNode::kSequence && jobs->kind != YNode::kNull) return top.error("\"jobs\" is not a list");
  for (size_t i = 0; jobs && i < jobs->items.size(); ++i) {
    Fields f(&jobs->items[i], fmt::format("jobs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"id", "lv", "le", "leg", "source", "destination", "state", "reason", "record"}));
    JobInfo j;
    VGFS_ASSIGN_OR_RETURN(j.id, f.u64("id"));
    if (f.has("leg")) {  // a leg of a striped run (validate() checks it against the run)
      uint64_t leg = 0;
      VGFS_ASSIGN_OR_RETURN(leg, f.u64("leg"));
      if (leg >= kMaxStripes) return f.error(fmt::format("\"leg\" {} is not below {} (the most stripes)", leg, kMaxStripes));
      j.leg = static_cast<uint32_t>(leg);
    }
    VGFS_ASSIGN_OR_RETURN(j.lv, f.str("lv"));
    VGFS_ASSIGN_OR_RETURN(j.reason, f.str("reason"));
    std::string le, src, dst, state, record;
    VGFS_ASSIGN_OR_RETURN(le, f.str("le"));
    VGFS_ASSIGN_OR_RETURN(src, f.str("source"));
    VGFS_ASSIGN_OR_RETURN(dst, f.str("destination"));
    VGFS_ASSIGN_OR_RETURN(state, f.str("state"));
    VGFS_ASSIGN_OR_RETURN(record, f.str("record"));
    Result<IndexRange> range = parse_range(le);
    if (!range.ok()) return f.error(fmt::format("bad LE range \"{}\"", printable(le)));
    j.le = range->first;
    j.count = range->count;
    auto pv_pe = [&](const std::string& text, uint32_t* pv, uint64_t* pe) -> Status {
      size_t sp = text.find(' ');
      auto it = sp == std::string::npos ? pv_index.end() : pv_index.find(std::string_view(text).substr(0, sp));
      Result<IndexRange> at = parse_range(sp == std::string::npos ? "" : std::string_view(text).substr(sp + 1));
      if (it == pv_index.end() || !at.ok() || at->count != 1)
        return f.error(fmt::format("bad \"PV PE\" value \"{}\"", printable(text)));
      *pv = it->second;
      *pe = at->first;
      return Status::Ok();
    };
    VGFS_RETURN_IF_ERROR(pv_pe(src, &j.src_pv, &j.src_pe));
    VGFS_RETURN_IF_ERROR(pv_pe(dst, &j.dst_pv, &j.dst_pe));
    bool known = false;
    for (JobState st : {JobState::kRunning, JobState::kCompleted, JobState::kAborted, JobState::kFailed})
      if (job_state_name(st) == state) {
        j.state = st;
        known = true;
      }
    if (!known) return f.error(fmt::format("unknown job state \"{}\"", printable(state)));
    if (!parse_two_u64(record, &j.record_offset, &j.record_size))
      return f.error(fmt::format("bad record place \"{}\"", printable(record)));
    md.jobs.push_back(std::move(j));
  }
  VGFS_RETURN_IF_ERROR(md.validate().prefixed(std::string(origin)));
  return md;
}

}  // namespace

Result<VgMetadata> decode_metadata(std::string_view text, std::string_view origin) {
  if (text.size() > kMaxMetadataText)
    return Status::Error(EINVAL, fmt::format("{}: metadata text of {} bytes is larger than any slot ({})", origin,
                                             text.size(), format_size(kMaxMetadataText)));
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    TreeBuilder builder(text.size());
    while (parser.HandleNextDocument(builder)) {
    }
    if (!builder.has_root()) return Status::Error(EINVAL, fmt::format("{}: metadata text is empty", origin));
    return decode(builder.root(), origin);
  } catch (const YAML::Exception& e) {
    return Status::Error(EINVAL, fmt::format("{}: metadata is not valid YAML at line {}, column {}: {}", origin,
                                             e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, fmt::format("{}: out of memory decoding {} bytes of metadata", origin, text.size()));
  }
}

}  // namespace vgfs
