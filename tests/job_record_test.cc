// Unit tests of the on-disk transfer-region record (include/vgfs/job_record.h):
// round trip of every field, copy size, and the refusals of decode.
#include <doctest/doctest.h>

#include <boost/endian/conversion.hpp>

#include <cerrno>
#include <cstring>
#include <string>

#include "vgfs/job_record.h"
#include "vgfs/units.h"

using namespace vgfs;

namespace {

// Header offsets of the record (src/pv/job_record.cc).
constexpr size_t kOffId = 8, kOffGeneration = 16, kOffPointer = 24, kOffStatus = 32, kOffPaused = 36,
                 kOffRegions = 40, kOffRateLimit = 56, kOffHeaderCrc = kJobRecordHeaderSize - 4;

unsigned char* u8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

// Recomputes the header checksum after a deliberate change.
void reseal_header(std::string& image) {
  boost::endian::store_little_u32(u8(image) + kOffHeaderCrc, crc32c(image.data(), kOffHeaderCrc));
}

bool bit_set(const JobRecord& r, uint64_t region) { return (r.bitmap[region / 64] >> (region % 64)) & 1; }

JobRecord sample(uint64_t regions = 200) {
  JobRecord r;
  r.job_id = 42;
  r.generation = 0x1122334455667788ull;
  r.progress_pointer = 37 * 64 * KiB;
  r.sync_status = SyncStatus::kResyncing;
  r.paused = true;
  r.rate_limit = 50 * MiB;
  r.region_count = regions;
  r.bitmap.assign(div_ceil(regions, 64), 0);
  for (uint64_t b : {uint64_t{0}, uint64_t{63}, uint64_t{64}, regions - 1})
    if (b < regions) r.bitmap[b / 64] |= uint64_t{1} << (b % 64);
  return r;
}

void check_refused(const std::string& image, uint64_t job, uint64_t regions, const char* why) {
  CAPTURE(why);
  Result<JobRecord> r = decode_job_record(image, job, regions);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EINVAL);
  CHECK_FALSE(r.status().message().empty());
}

}  // namespace

TEST_CASE("job record: copy size is a 4 KiB header plus the bitmap rounded to 4 KiB") {
  CHECK(kJobRecordHeaderSize == 4096);
  CHECK(job_record_copy_size(0) == 4096);
  CHECK(job_record_copy_size(1) == 8192);
  CHECK(job_record_copy_size(64) == 8192);
  CHECK(job_record_copy_size(65) == 8192);
  CHECK(job_record_copy_size(4096 * 8) == 8192);       // 32768 bits = 4096 bytes
  CHECK(job_record_copy_size(4096 * 8 + 1) == 12288);  // one word more
  for (uint64_t n : {1ull, 7ull, 63ull, 64ull, 65ull, 1000ull, 32768ull, 32769ull, 1000000ull}) {
    CAPTURE(n);
    uint64_t size = job_record_copy_size(n);
    CHECK(size % 4096 == 0);
    CHECK(size >= kJobRecordHeaderSize + div_ceil(n, 64) * 8);
    CHECK(size < kJobRecordHeaderSize + div_ceil(n, 64) * 8 + 4096);
  }
}

TEST_CASE("job record: encode then decode gives every field back") {
  JobRecord in = sample(200);
  std::string image = encode_job_record(in);
  REQUIRE(image.size() == job_record_copy_size(200));

  Result<JobRecord> out = decode_job_record(image, 42, 200);
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  CHECK(out->job_id == 42);
  CHECK(out->generation == in.generation);
  CHECK(out->progress_pointer == in.progress_pointer);
  CHECK(out->sync_status == SyncStatus::kResyncing);
  CHECK(out->paused);
  CHECK(out->rate_limit == 50 * MiB);
  CHECK(out->region_count == 200);
  REQUIRE(out->bitmap.size() == 4);
  CHECK(out->bitmap == in.bitmap);
  for (uint64_t r = 0; r < 200; ++r) {
    CAPTURE(r);
    CHECK(bit_set(*out, r) == (r == 0 || r == 63 || r == 64 || r == 199));
  }

  // Little-endian fields at the documented places.
  CHECK(std::memcmp(image.data(), "VGFSJOB1", 8) == 0);
  CHECK(boost::endian::load_little_u64(u8(image) + kOffId) == 42);
  CHECK(boost::endian::load_little_u64(u8(image) + kOffGeneration) == in.generation);
  CHECK(boost::endian::load_little_u64(u8(image) + kOffPointer) == in.progress_pointer);
  CHECK(boost::endian::load_little_u32(u8(image) + kOffStatus) == 1);
  CHECK(boost::endian::load_little_u32(u8(image) + kOffPaused) == 1);
  CHECK(boost::endian::load_little_u64(u8(image) + kOffRegions) == 200);
  CHECK(boost::endian::load_little_u64(u8(image) + kOffRateLimit) == 50 * MiB);
  CHECK(boost::endian::load_little_u64(u8(image) + kJobRecordHeaderSize) == in.bitmap[0]);
}

TEST_CASE("job record: every status, paused off, empty bitmap, exact region multiples") {
  for (SyncStatus s : {SyncStatus::kCopying, SyncStatus::kResyncing, SyncStatus::kSynchronized,
                       SyncStatus::kCompleted, SyncStatus::kAborted, SyncStatus::kFailed}) {
    for (uint64_t regions : {1ull, 64ull, 128ull, 129ull, 32768ull, 32769ull}) {
      CAPTURE(static_cast<uint32_t>(s));
      CAPTURE(regions);
      JobRecord in = sample(regions);
      in.sync_status = s;
      in.paused = false;
      in.rate_limit = 0;
      in.generation = 1;
      in.progress_pointer = 0;
      std::string image = encode_job_record(in);
      REQUIRE(image.size() == job_record_copy_size(regions));
      Result<JobRecord> out = decode_job_record(image, 42, regions);
      REQUIRE_MESSAGE(out.ok(), out.status().message());
      CHECK(out->sync_status == s);
      CHECK_FALSE(out->paused);
      CHECK(out->rate_limit == 0);
      CHECK(out->generation == 1);
      CHECK(out->progress_pointer == 0);
      CHECK(out->bitmap == in.bitmap);
      CHECK(bit_set(*out, regions - 1));
      CHECK(bit_set(*out, 0));
    }
  }
  JobRecord clean = sample(100);
  clean.bitmap.assign(2, 0);
  Result<JobRecord> out = decode_job_record(encode_job_record(clean), 42, 100);
  REQUIRE(out.ok());
  CHECK(out->bitmap == std::vector<uint64_t>{0, 0});
}

TEST_CASE("job record: sync status names") {
  CHECK(sync_status_name(SyncStatus::kCopying) == "copying");
  CHECK(sync_status_name(SyncStatus::kResyncing) == "resyncing");
  CHECK(sync_status_name(SyncStatus::kSynchronized) == "synchronized");
  CHECK(sync_status_name(SyncStatus::kCompleted) == "completed");
  CHECK(sync_status_name(SyncStatus::kAborted) == "aborted");
  CHECK(sync_status_name(SyncStatus::kFailed) == "failed");
}

TEST_CASE("job record: a longer buffer (the record area) decodes its first copy") {
  JobRecord in = sample(200);
  std::string image = encode_job_record(in) + std::string(4096, 'x');
  Result<JobRecord> out = decode_job_record(image, 42, 200);
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  CHECK(out->generation == in.generation);
}

TEST_CASE("job record: decode refuses records that are not this job's") {
  const std::string image = encode_job_record(sample(200));
  REQUIRE(decode_job_record(image, 42, 200).ok());

  check_refused(image, 43, 200, "wrong job id");
  check_refused(image, 0, 200, "job id 0");
  // 199 and 201 regions have the same copy size, so only the count field differs.
  REQUIRE(job_record_copy_size(199) == image.size());
  REQUIRE(job_record_copy_size(201) == image.size());
  check_refused(image, 42, 199, "fewer regions");
  check_refused(image, 42, 201, "more regions");
  check_refused(image, 42, 100000, "far more regions (longer than the input)");
}

TEST_CASE("job record: decode refuses damaged or short input") {
  const std::string good = encode_job_record(sample(200));

  SUBCASE("flipped header bytes") {
    for (size_t at : {size_t{8}, size_t{16}, size_t{24}, size_t{33}, size_t{36}, size_t{40}, size_t{48},
                      size_t{56}, size_t{100}, size_t{2000}, size_t{4091}, size_t{4092}, size_t{4095}}) {
      CAPTURE(at);
      std::string image = good;
      image[at] = static_cast<char>(image[at] ^ 0x01);
      check_refused(image, 42, 200, "flipped header byte");
    }
  }
  SUBCASE("flipped bitmap bytes") {
    for (size_t at : {kJobRecordHeaderSize, kJobRecordHeaderSize + 9, kJobRecordHeaderSize + 24,
                      kJobRecordHeaderSize + 31}) {
      CAPTURE(at);
      std::string image = good;
      image[at] = static_cast<char>(image[at] ^ 0x80);
      check_refused(image, 42, 200, "flipped bitmap byte");
    }
  }
  SUBCASE("bad magic, even with a valid checksum") {
    std::string image = good;
    image[0] = 'X';
    check_refused(image, 42, 200, "bad magic");
    reseal_header(image);
    check_refused(image, 42, 200, "bad magic, resealed");
    check_refused(std::string(good.size(), '\0'), 42, 200, "all zeros");
  }
  SUBCASE("truncated input") {
    check_refused(good.substr(0, good.size() - 1), 42, 200, "one byte short");
    check_refused(good.substr(0, kJobRecordHeaderSize), 42, 200, "header only");
    check_refused(good.substr(0, 100), 42, 200, "100 bytes");
    check_refused(std::string(), 42, 200, "empty");
  }
  SUBCASE("a resealed header with a changed field decodes with that field") {
    // Proves reseal_header() computes the checksum the decoder expects, so
    // the unknown-status refusal below is about the status.
    std::string image = good;
    boost::endian::store_little_u32(u8(image) + kOffStatus, static_cast<uint32_t>(SyncStatus::kFailed));
    check_refused(image, 42, 200, "changed but not resealed");
    reseal_header(image);
    Result<JobRecord> r = decode_job_record(image, 42, 200);
    REQUIRE_MESSAGE(r.ok(), r.status().message());
    CHECK(r->sync_status == SyncStatus::kFailed);
  }
  SUBCASE("unknown status value with a valid checksum") {
    for (uint32_t status : {6u, 7u, 255u, 0x80000000u, 0xffffffffu}) {
      CAPTURE(status);
      std::string image = good;
      boost::endian::store_little_u32(u8(image) + kOffStatus, status);
      reseal_header(image);
      check_refused(image, 42, 200, "unknown status");
    }
  }
}

TEST_CASE("job record: decode refuses a generation that would wrap") {
  JobRecord r = sample(200);
  r.generation = UINT64_MAX;
  check_refused(encode_job_record(r), 42, 200, "generation 2^64-1");
  r.generation = kMaxJobRecordGeneration;
  CHECK(decode_job_record(encode_job_record(r), 42, 200).ok());
}

TEST_CASE("job record: decode refuses bits past the last region") {
  // A set bit past region 199 would make the copier copy outside the range.
  JobRecord r = sample(200);
  r.bitmap.back() |= uint64_t{1} << 63;
  check_refused(encode_job_record(r), 42, 200, "bit 255 of 200 regions");
  r = sample(256);
  r.bitmap.back() |= uint64_t{1} << 63;  // region 255 exists
  CHECK(decode_job_record(encode_job_record(r), 42, 256).ok());
}
