// Unit tests of mount(8)'s helper form (src/cli/mount_helper.h): the
// arguments util-linux passes to /sbin/mount.fuse.vgfs become a `vgfs mount`
// command line; nothing else selects that form.
#include <doctest/doctest.h>

#include "cli/mount_helper.h"

using namespace vgfs::cli;

using Args = std::vector<std::string>;

TEST_CASE("only the name mount.fuse.vgfs selects the helper form") {
  CHECK(invoked_as_mount_helper("/sbin/mount.fuse.vgfs"));
  CHECK(invoked_as_mount_helper("mount.fuse.vgfs"));
  CHECK_FALSE(invoked_as_mount_helper("/usr/bin/vgfs"));
  CHECK_FALSE(invoked_as_mount_helper("/sbin/mount.fuse.vgfs.old"));
  CHECK_FALSE(invoked_as_mount_helper("/mount.fuse.vgfs/vgfs"));
  CHECK_FALSE(invoked_as_mount_helper(nullptr));
}

TEST_CASE("util-linux's helper arguments become vgfs mount") {
  auto ok = [](const Args& in) {
    auto r = mount_helper_command(in);
    REQUIRE(r.ok());
    return *r;
  };
  CHECK(ok({"/etc/vgfs/vg0.yaml", "/mnt/vg0", "-o", "rw,allow_other"}).args ==
        Args{"mount", "/etc/vgfs/vg0.yaml", "/mnt/vg0", "-o", "rw,allow_other"});
  // -s, -n, -v change nothing; -t names our own type; -oOPTS glued.
  HelperCommand c = ok({"-s", "cfg.yaml", "-nv", "mnt", "-t", "fuse.vgfs", "-oro"});
  CHECK(c.args == Args{"mount", "cfg.yaml", "mnt", "-o", "ro"});
  CHECK_FALSE(c.fake);
  CHECK(ok({"cfg.yaml", "mnt", "-f"}).fake);
  CHECK(ok({"cfg.yaml", "mnt", "-fnv", "-o", "rw"}).fake);
  // A config named like a verb is still the source here.
  CHECK(ok({"dump", "mnt"}).args == Args{"mount", "dump", "mnt"});
}

TEST_CASE("what mount(8) would not pass is refused with one line") {
  for (const Args& bad : {Args{"cfg.yaml"}, Args{"a", "b", "c"}, Args{"cfg.yaml", "mnt", "-N", "/proc/1/ns/mnt"},
                          Args{"cfg.yaml", "mnt", "--bogus"}, Args{"cfg.yaml", "mnt", "-o"}, Args{"cfg", "mnt", "-x"}}) {
    auto r = mount_helper_command(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().rfind("mount.fuse.vgfs: ", 0) == 0);
    CHECK(r.status().message().find('\n') == std::string::npos);
  }
}
