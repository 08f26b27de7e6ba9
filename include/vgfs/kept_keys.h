// KeptKeys: keys of a metadata record that vgfs does not understand, kept
// verbatim so that rewriting the record loses nothing (LVM2's rule: "keep
// every key you do not understand", docs/format.md "Kept keys").
//
// Invariant: the pairs are in the order they were read, no key appears
// twice, and each value is the exact text the format read (for vgfs's own
// YAML a string; for LVM2's text the raw value: a number, a quoted string, a
// list or a whole section), written back unchanged by the same format.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace vgfs {

using KeptKeys = std::vector<std::pair<std::string, std::string>>;

}  // namespace vgfs
