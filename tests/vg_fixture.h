// The unit tests' one way to make a VG: write a config into a temp folder,
// `vgfs create` it and open it read-write, as a mount does.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/vg_store.h"

namespace vgfs_test {

// Writes `yaml` as dir/vg.yaml, creates the VG it describes and opens it
// read-write; every step must succeed.
inline std::unique_ptr<vgfs::VgStore> create_and_open(const TempDir& dir, const std::string& yaml) {
  write_file(dir / "vg.yaml", yaml);
  vgfs::Result<vgfs::VgConfig> cfg = vgfs::load_config(dir / "vg.yaml");
  REQUIRE(cfg.ok());
  std::vector<std::string> notes;
  REQUIRE(vgfs::VgStore::create(*cfg, false, &notes).ok());
  auto opened = vgfs::VgStore::open(*cfg, vgfs::OpenMode::kReadWrite, &notes);
  REQUIRE(opened.ok());
  return std::move(*opened);
}

}  // namespace vgfs_test
