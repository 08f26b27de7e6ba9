// LVM2's metadata text as a generic tree (docs/lvm2.md, "Text"): the syntax
// of libdm's config files, which LVM2 writes its VG metadata in.
//
//   name { ... }            a section
//   key = value             an integer (decimal; a leading 0 is octal, as
//                           strtoll base 0 reads it), a float, "a string"
//                           (\" and \\ escapes), 'a string' (no escapes)
//   key = [ v, v, ... ]     a list (commas optional, no nesting)
//   # comment               to the end of the line; a NUL ends the text
//
// Invariant: a parsed tree keeps every key and section, known or not, in the
// order of the text; a key appears at most once per section (the parser
// refuses a repeated key, which LVM2 would merge or override with a
// warning); nesting depth is at most kMaxDepth. emit() writes LVM2's text
// style, and parse(emit(t)) == t for every tree parse() returns.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/status.h"

namespace vgfs::lvm2 {

constexpr int kMaxDepth = 32;

struct ConfigValue {
  enum class Kind { kInt, kFloat, kString };
  Kind kind = Kind::kString;
  int64_t integer = 0;
  std::string text;  // the string, or a float's token as written

  static ConfigValue of_int(int64_t v) { return {Kind::kInt, v, {}}; }
  static ConfigValue of_string(std::string s) { return {Kind::kString, 0, std::move(s)}; }
  bool operator==(const ConfigValue&) const = default;
};

struct ConfigNode {
  std::string key;
  bool section = false;              // `key { children }`, else `key = values`
  bool list = false;                 // the value was written as [ ... ]
  std::vector<ConfigValue> values;   // one value, or a list's elements
  std::vector<ConfigNode> children;  // a section's keys and subsections
  int line = 0;                      // where the key was (not compared)

  bool operator==(const ConfigNode& o) const {
    return key == o.key && section == o.section && list == o.list && values == o.values && children == o.children;
  }
  // The child named `key`, or null.
  const ConfigNode* find(std::string_view name) const;
};

// The whole text: its top-level keys and sections, in order.
struct ConfigTree {
  std::vector<ConfigNode> top;
  bool operator==(const ConfigTree&) const = default;
  const ConfigNode* find(std::string_view name) const;
};

// Parses `text` (up to its end or first NUL). EINVAL naming the line and
// what was expected for a syntax error, an unterminated string or list, a
// repeated key, an integer out of 64-bit range or nesting past kMaxDepth.
// `origin` names the text in errors (e.g. "/dev/loop1 mda1").
Result<ConfigTree> parse_config(std::string_view text, std::string_view origin);
// The head of a text only: parse_config() up to the point where the first
// section holds every key of `keys` (LVM2 writes `id` and `seqno` first,
// then the VG's other keys, physical_volumes, logical_volumes), enough for
// read_vg_summary(). What follows is not read, so not checked: for choosing
// among copies before the chosen one is parsed whole (VgFormat::read_copies).
Result<ConfigTree> parse_config_head(std::string_view text, std::string_view origin,
                                     std::initializer_list<std::string_view> keys = {"id", "seqno"});

// LVM2's style: no indentation, `key = value`, lists inline as ["a", "b"]
// except `stripes`/`mirrors` pairs one per line, a blank line before each
// section. Keys that are not bare words are written quoted.
std::string emit_config(const ConfigTree& tree);
// One node's value as emit_config() writes it: `{\n...}` for a section,
// else the text after `key = ` (no newline after either).
std::string emit_value(const ConfigNode& node);

}  // namespace vgfs::lvm2
