// Fuzz target: load_config (include/vgfs/config.h), the YAML file `vgfs
// create` and `vgfs mount` read.
//
// load_config takes a path, not a string; the target writes each input to a
// memfd and passes its /proc/self/fd path, so the real entry point (file
// checks and all) is what runs, without touching the disk.
//
// Oracle: the config either is refused (an errno and a sentence) or keeps
// every promise of the header: valid names, distinct PV paths (absolute, or
// NBD URIs as written),
// power-of-two extent and region sizes in range, each LV with a size or a
// list of runs, nothing zero-sized. The mount's load (ConfigParts::kVgAndPvs,
// the `lvs:` block cut out of the text) of a config that loads whole gives
// the same VG and PVs and no LVs; the cut keeps the text's size and lines.
#include <algorithm>
#include <optional>
#include <set>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "vgfs/config.h"
#include "vgfs/metadata.h"
#include "vgfs/nbd_uri.h"
#include "vgfs/units.h"

using namespace vgfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const int fd = memfd_create("vgfs-config-fuzz", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  FUZZ_CHECK(fd >= 0, "memfd_create");
  FUZZ_CHECK(ftruncate(fd, 0) == 0, "ftruncate");
  FUZZ_CHECK(pwrite(fd, data, size, 0) == static_cast<ssize_t>(size), "pwrite");

  const std::string text(reinterpret_cast<const char*>(data), size);
  if (std::optional<std::string> cut = without_top_level_block(text, "lvs")) {
    FUZZ_CHECK(cut->size() == text.size(), "the cut changed the text's size");
    FUZZ_CHECK(std::count(cut->begin(), cut->end(), '\n') == std::count(text.begin(), text.end(), '\n'),
               "the cut changed the number of lines");
  }
  Result<VgConfig> cfg = load_config(path);
  Result<VgConfig> parts = load_config(path, ConfigParts::kVgAndPvs);
  if (cfg.ok()) {
    FUZZ_CHECK(parts.ok(), "loads whole but not for a mount: " + parts.status().message());
    FUZZ_CHECK(parts->name == cfg->name && parts->extent_size == cfg->extent_size &&
                   parts->region_size == cfg->region_size && parts->lvs.empty(),
               "the mount's load differs from the whole load");
    FUZZ_CHECK(parts->pvs.size() == cfg->pvs.size(), "the mount's load has other PVs");
    for (size_t i = 0; i < cfg->pvs.size(); ++i)
      FUZZ_CHECK(parts->pvs[i].name == cfg->pvs[i].name && parts->pvs[i].path == cfg->pvs[i].path &&
                     parts->pvs[i].size == cfg->pvs[i].size,
                 "the mount's load has another PV " + std::to_string(i));
  } else if (!parts.ok()) {
    FUZZ_CHECK(parts.status().message() == cfg.status().message(), "the mount's load failed otherwise");
  }
  if (!cfg.ok()) {
    fuzz::check_error(cfg.status());
    return 0;
  }
  FUZZ_CHECK(check_name("VG", cfg->name).ok(), "VG name " + cfg->name);
  FUZZ_CHECK(is_power_of_two(cfg->extent_size) && cfg->extent_size >= kMinExtentSize &&
                 cfg->extent_size <= kMaxExtentSize,
             "extent size");
  FUZZ_CHECK(is_power_of_two(cfg->region_size) && cfg->region_size >= 4 * KiB &&
                 cfg->extent_size % cfg->region_size == 0,
             "region size");
  FUZZ_CHECK(!cfg->pvs.empty(), "a config without PVs");
  std::set<std::string> names, paths;
  for (const PvConfig& pv : cfg->pvs) {
    FUZZ_CHECK(check_name("PV", pv.name).ok(), "PV name " + pv.name);
    // A path is a file made absolute, or an NBD URI kept as written.
    FUZZ_CHECK(is_nbd_uri(pv.path) || (!pv.path.empty() && pv.path[0] == '/'),
               "PV path neither absolute nor an NBD URI: " + pv.path);
    FUZZ_CHECK(!pv.size || *pv.size > 0, "a PV of size 0");
    FUZZ_CHECK(names.insert(pv.name).second, "PV name twice: " + pv.name);
    FUZZ_CHECK(paths.insert(pv.path).second, "PV path twice: " + pv.path);
  }
  names.clear();
  for (const LvConfig& lv : cfg->lvs) {
    FUZZ_CHECK(check_name("LV", lv.name).ok(), "LV name " + lv.name);
    FUZZ_CHECK(names.insert(lv.name).second, "LV name twice: " + lv.name);
    FUZZ_CHECK(lv.mode <= 0777, "LV mode");
    FUZZ_CHECK(lv.size.has_value() != !lv.extents.empty(), "LV " + lv.name + " needs a size or runs, not both");
    FUZZ_CHECK(!lv.size || *lv.size > 0, "an LV of size 0");
    for (const ExplicitRun& r : lv.extents) FUZZ_CHECK(r.count > 0, "an empty run");
  }
  return 0;
}
