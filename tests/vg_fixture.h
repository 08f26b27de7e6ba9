// The unit tests' one way to make a VG: write a config into a temp folder,
// `vgfs create` it and open it read-write, as a mount does.
#pragma once

#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "test_util.h"
#include "vgfs/config.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "vgfs/volume_manager.h"

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

// A VG made from `yaml` and opened as a mount opens it: the store (archive
// in dir/archive), the volume layer over it and the manager, started unless
// `start` is false (then no copier runs). Shut down in reverse order.
struct MountedVg {
  TempDir dir;
  std::unique_ptr<vgfs::VgStore> store;
  std::unique_ptr<vgfs::VolumeSet> volume;
  std::unique_ptr<vgfs::VolumeManager> manager;

  explicit MountedVg(const std::string& yaml, bool start = true) {
    store = create_and_open(dir, yaml);
    store->set_archive(dir / "archive");
    volume = std::make_unique<vgfs::VolumeSet>(*store);
    manager = std::make_unique<vgfs::VolumeManager>(*store, *volume);
    if (start) REQUIRE(manager->start().ok());
  }
  ~MountedVg() {
    if (manager) manager->shutdown();
  }
  const vgfs::LvInfo& lv(const char* name) const {
    return store->metadata().lvs[store->metadata().find_lv(name)];
  }
};

// Two PVs of `pv_size` and LV a of 4 MiB, extents of 1 MiB: the VG most
// manager tests start from.
inline std::string two_pv_yaml(const std::string& pv_size = "64MiB", const std::string& lvs = "  - {name: a, size: 4MiB}\n") {
  return "vg: {name: vg0, extent_size: 1MiB}\n"
         "pvs:\n"
         "  - {name: pv0, path: pv0.img, size: " + pv_size + "}\n"
         "  - {name: pv1, path: pv1.img, size: " + pv_size + "}\n"
         "lvs:\n" + lvs;
}

}  // namespace vgfs_test
