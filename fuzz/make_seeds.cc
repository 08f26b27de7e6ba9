// Writes the binary seeds of the fuzz corpus (docs/fuzzing.md, "Corpus") with
// the project's own encoders, in the input formats the targets read (a flag
// byte and parameters, then the record): labels and slot headers of
// standard PVs, job records of a few sizes and states, and the metadata
// text of a VG with running and finished jobs and of one with stripes, a
// hidden LV and kept keys.
//
// Usage: make_seeds CORPUS_DIR   (writes CORPUS_DIR/<target>/<name>)
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz_util.h"
#include "vgfs/job_record.h"
#include "vgfs/metadata.h"
#include "vgfs/pv_format.h"

using namespace vgfs;

namespace {

std::filesystem::path corpus;

void write(const std::string& target, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(corpus / target);
  std::ofstream(corpus / target / name, std::ios::binary) << bytes;
}

std::string with_params(uint8_t flags, std::initializer_list<uint64_t> params, const std::string& body) {
  std::string s(1, static_cast<char>(flags));
  for (uint64_t p : params) fuzz::put_le(&s, p, 8);
  return s + body;
}

Uuid uuid_of(uint8_t seed) {
  Uuid u{};
  for (size_t i = 0; i < u.size(); ++i) u[i] = static_cast<uint8_t>(seed * 17 + i);
  return u;
}

void labels() {
  const uint64_t sizes[] = {1 * GiB, 64 * MiB, 100 * GiB + 12345};
  const uint64_t extents[] = {4 * MiB, 64 * KiB, 1 * GiB};
  int n = 0;
  for (uint64_t size : sizes)
    for (uint64_t extent : extents) {
      PvLabel l{uuid_of(1), uuid_of(2), PvLayout::standard(size, extent)};
      write("label", "standard-" + std::to_string(n++), with_params(1, {size}, encode_label(l)));
    }
  // A label whose PEs end exactly at the device end.
  PvLabel exact{uuid_of(3), uuid_of(4), PvLayout::standard(1 * GiB, 4 * MiB)};
  exact.layout.device_size = exact.layout.pe_offset(exact.layout.pe_count);
  write("label", "exact-end", with_params(0, {exact.layout.device_size}, encode_label(exact)));
}

void slot_headers() {
  const std::string text = "vg: {}\n";
  write("slot_header", "first", with_params(1, {kDefaultSlotSize}, encode_slot_header({1, 4000, crc32c(text.data(), text.size())})));
  write("slot_header", "full", with_params(0, {kDefaultSlotSize}, encode_slot_header({2, kDefaultSlotSize - kSlotHeaderSize, 7})));
  write("slot_header", "high-seqno", with_params(1, {64 * KiB}, encode_slot_header({1ull << 40, 1, 0xdeadbeef})));
}

void job_records() {
  struct Case { const char* name; uint64_t regions; SyncStatus status; bool paused; uint64_t pointer; };
  const Case cases[] = {
      {"copying-16", 16, SyncStatus::kCopying, false, 0},
      {"resyncing-1024", 1024, SyncStatus::kResyncing, true, 64 * MiB},
      {"synchronized-100", 100, SyncStatus::kSynchronized, false, 25 * MiB},
      {"completed-64", 64, SyncStatus::kCompleted, false, 16 * MiB},
      {"failed-33000", 33000, SyncStatus::kFailed, false, 12345 * 256 * KiB},
  };
  uint64_t id = 1;
  for (const Case& c : cases) {
    JobRecord r;
    r.job_id = id;
    r.generation = id * 3;
    r.progress_pointer = c.pointer;
    r.sync_status = c.status;
    r.paused = c.paused;
    r.rate_limit = id == 2 ? 50 * MiB : 0;
    r.region_count = c.regions;
    r.bitmap.assign(div_ceil(c.regions, 64), 0);
    for (size_t w = 0; w < r.bitmap.size(); w += 3) r.bitmap[w] = 0x8000000000000001ull >> (w % 7);
    if (c.regions % 64) r.bitmap.back() &= (1ull << (c.regions % 64)) - 1;
    write("job_record", c.name, with_params(1, {r.job_id, c.regions}, encode_job_record(r)));
    ++id;
  }
}

// A VG of two PVs with a running move, a finished one and a failed one.
void metadata_with_jobs() {
  VgMetadata md;
  md.name = "vg0";
  md.uuid = uuid_of(5);
  md.seqno = 42;
  md.next_job_id = 4;
  for (int i = 0; i < 2; ++i) {
    PvInfo pv;
    pv.name = "pv" + std::to_string(i);
    pv.uuid = uuid_of(static_cast<uint8_t>(10 + i));
    pv.path = "/var/lib/vgfs/pv" + std::to_string(i) + ".img";
    pv.pe_start = 13 * MiB;
    pv.pe_count = 252;
    md.pvs.push_back(pv);
  }
  LvInfo data{"data", uuid_of(20), 0640, {}};
  data.map.append(0, 0, 64);
  md.lvs.push_back(data);
  LvInfo spread{"spread", uuid_of(21), 0600, {}};
  spread.map.append(0, 100, 50);
  spread.map.append(1, 10, 50);
  md.lvs.push_back(spread);
  JobInfo running;
  running.id = 3;
  running.lv = "data";
  running.le = 0;
  running.count = 64;
  running.src_pv = 0;
  running.src_pe = 0;
  running.dst_pv = 1;
  running.dst_pe = 100;
  running.record_offset = 0;
  running.record_size = 2 * job_record_copy_size(64 * 4 * MiB / kDefaultRegionSize);
  md.jobs.push_back(running);
  JobInfo done = running;
  done.id = 1;
  done.lv = "spread";
  done.count = 50;
  done.src_pe = 200;
  done.dst_pe = 10;
  done.state = JobState::kCompleted;
  md.jobs.insert(md.jobs.begin(), done);
  JobInfo failed = done;
  failed.id = 2;
  failed.state = JobState::kFailed;
  failed.reason = "read error on pv0 at PE 201: Input/output error";
  md.jobs.insert(md.jobs.begin() + 1, failed);
  Status st = md.validate();
  if (!st.ok()) {
    std::fprintf(stderr, "make_seeds: the VG with jobs is invalid: %s\n", st.message().c_str());
    std::exit(1);
  }
  write("metadata", "vg-with-jobs.yaml", encode_metadata(md));
}

// A VG with what LVM2 VGs have: a striped run, a hidden LV with an owner,
// and keys kept verbatim at every level (docs/format.md).
void metadata_lvm2_like() {
  VgMetadata md;
  md.name = "vg1";
  md.uuid = uuid_of(6);
  md.seqno = 9;
  md.kept = {{"status", "[\"RESIZEABLE\", \"READ\", \"WRITE\"]"}, {"max_lv", "0"}};
  for (int i = 0; i < 3; ++i) {
    PvInfo pv;
    pv.name = "pv" + std::to_string(i);
    pv.uuid = uuid_of(static_cast<uint8_t>(30 + i));
    pv.path = "/dev/loop" + std::to_string(i);
    pv.pe_start = 1 * MiB;
    pv.pe_count = 100;
    if (i == 1) pv.kept = {{"device", "\"/dev/sdb\""}};
    md.pvs.push_back(pv);
  }
  LvInfo data{"data", uuid_of(40), 0600, {}};
  data.map.append(0, 0, 4);
  MapRun stripes;
  stripes.count = 6;
  stripes.pv = 0;
  stripes.pe = 4;
  stripes.stripe_size = 64 * KiB;
  stripes.more_legs = {{1, 0}, {2, 0}};
  stripes.kept = {{"reshape_count", "0"}};
  data.map.append_run(stripes);
  data.kept = {{"creation_host", "\"build\""}};
  md.lvs.push_back(data);
  LvInfo hidden{"pvmove0", uuid_of(41), 0640, {}};
  hidden.uid = 1000;
  hidden.gid = 1000;
  hidden.hidden = true;
  hidden.map.append(1, 50, 2);
  md.lvs.push_back(hidden);
  Status st = md.validate();
  if (!st.ok()) {
    std::fprintf(stderr, "make_seeds: the LVM2-like VG is invalid: %s\n", st.message().c_str());
    std::exit(1);
  }
  write("metadata", "vg-striped-hidden-kept.yaml", encode_metadata(md));
  // The same with a running job moving leg 1 of the striped run (issue 12).
  JobInfo leg;
  leg.id = 1;
  leg.lv = "data";
  leg.le = 4;
  leg.count = 2;
  leg.leg = 1;
  leg.src_pv = 1;
  leg.src_pe = 0;
  leg.dst_pv = 1;
  leg.dst_pe = 60;
  leg.record_size = 16 * KiB;
  md.jobs.push_back(leg);
  md.next_job_id = 2;
  st = md.validate();
  if (!st.ok()) {
    std::fprintf(stderr, "make_seeds: the VG with a leg job is invalid: %s\n", st.message().c_str());
    std::exit(1);
  }
  write("metadata", "vg-striped-leg-job.yaml", encode_metadata(md));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds CORPUS_DIR\n");
    return 2;
  }
  corpus = argv[1];
  labels();
  slot_headers();
  job_records();
  metadata_with_jobs();
  metadata_lvm2_like();
  return 0;
}
