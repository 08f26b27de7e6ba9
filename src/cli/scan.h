// `vgfs scan PATH... [--json]` (docs/lvm2.md "vgfs scan"): the PVs
// and VGs on image files, block devices and the partitions of disk images,
// LVM2's and vgfs's own, read-only.
//
// Invariant: scanning opens every path O_RDONLY after checking it is a
// regular file or a block device, and never writes.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace vgfs::cli {

// Registers the verb on `app`; run() is what main calls when it was chosen.
class ScanCommand {
 public:
  explicit ScanCommand(CLI::App& app);
  bool chosen() const { return command_->parsed(); }
  int run() const;

 private:
  CLI::App* command_;
  std::vector<std::string> paths_;
  bool json_ = false;
};

}  // namespace vgfs::cli
