// Encoding of the transfer-region record (include/vgfs/job_record.h).
#include "vgfs/job_record.h"

#include <boost/endian/conversion.hpp>
#include <cstring>
#include <fmt/format.h>

#include "vgfs/units.h"

namespace vgfs {

namespace {
constexpr char kMagic[8] = {'V', 'G', 'F', 'S', 'J', 'O', 'B', '1'};
enum : size_t {
  kId = 8, kGeneration = 16, kPointer = 24, kStatus = 32, kPaused = 36, kRegions = 40, kBitmapCrc = 48,
  kRateLimit = 56, kHeaderCrc = kJobRecordHeaderSize - 4,
};
unsigned char* u8(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }
const unsigned char* u8(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }
}  // namespace

std::string_view sync_status_name(SyncStatus status) {
  switch (status) {
    case SyncStatus::kCopying: return "copying";
    case SyncStatus::kResyncing: return "resyncing";
    case SyncStatus::kSynchronized: return "synchronized";
    case SyncStatus::kCompleted: return "completed";
    case SyncStatus::kAborted: return "aborted";
    case SyncStatus::kFailed: return "failed";
  }
  return "unknown";
}

uint64_t job_record_copy_size(uint64_t region_count) {
  return kJobRecordHeaderSize + align_up((region_count + 63) / 64 * 8, 4096);
}

std::string encode_job_record(const JobRecord& r) {
  std::string out(job_record_copy_size(r.region_count), '\0');
  std::memcpy(out.data(), kMagic, 8);
  boost::endian::store_little_u64(u8(out) + kId, r.job_id);
  boost::endian::store_little_u64(u8(out) + kGeneration, r.generation);
  boost::endian::store_little_u64(u8(out) + kPointer, r.progress_pointer);
  boost::endian::store_little_u32(u8(out) + kStatus, static_cast<uint32_t>(r.sync_status));
  boost::endian::store_little_u32(u8(out) + kPaused, r.paused ? 1 : 0);
  boost::endian::store_little_u64(u8(out) + kRegions, r.region_count);
  boost::endian::store_little_u64(u8(out) + kRateLimit, r.rate_limit);
  const size_t bytes = (r.region_count + 63) / 64 * 8;
  for (size_t w = 0; w < r.bitmap.size(); ++w)
    boost::endian::store_little_u64(u8(out) + kJobRecordHeaderSize + w * 8, r.bitmap[w]);
  boost::endian::store_little_u32(u8(out) + kBitmapCrc, crc32c(out.data() + kJobRecordHeaderSize, bytes));
  boost::endian::store_little_u32(u8(out) + kHeaderCrc, crc32c(out.data(), kHeaderCrc));
  return out;
}

Result<JobRecord> decode_job_record(std::string_view in, uint64_t job_id, uint64_t region_count) {
  auto bad = [&](std::string what) {
    return Status::Error(EINVAL, fmt::format("record of job {} {}", job_id, what));
  };
  if (region_count > kMaxJobRecordRegions) return bad(fmt::format("has {} regions, too many", region_count));
  if (in.size() < job_record_copy_size(region_count)) return bad("is truncated");
  if (std::memcmp(in.data(), kMagic, 8) != 0) return bad("has no record magic");
  if (boost::endian::load_little_u32(u8(in) + kHeaderCrc) != crc32c(in.data(), kHeaderCrc))
    return bad("header checksum mismatch");
  JobRecord r;
  r.job_id = boost::endian::load_little_u64(u8(in) + kId);
  r.generation = boost::endian::load_little_u64(u8(in) + kGeneration);
  r.progress_pointer = boost::endian::load_little_u64(u8(in) + kPointer);
  uint32_t status = boost::endian::load_little_u32(u8(in) + kStatus);
  r.paused = boost::endian::load_little_u32(u8(in) + kPaused) != 0;
  r.region_count = boost::endian::load_little_u64(u8(in) + kRegions);
  r.rate_limit = boost::endian::load_little_u64(u8(in) + kRateLimit);
  if (r.job_id != job_id) return bad(fmt::format("belongs to job {}", r.job_id));
  // generation + 1 must not wrap, or the next record would lose to this one.
  if (r.generation > kMaxJobRecordGeneration) return bad(fmt::format("has generation {}", r.generation));
  if (r.region_count != region_count) return bad(fmt::format("has {} regions, not {}", r.region_count, region_count));
  if (status > static_cast<uint32_t>(SyncStatus::kFailed)) return bad(fmt::format("has unknown status {}", status));
  r.sync_status = static_cast<SyncStatus>(status);
  const size_t bytes = (region_count + 63) / 64 * 8;
  if (boost::endian::load_little_u32(u8(in) + kBitmapCrc) != crc32c(in.data() + kJobRecordHeaderSize, bytes))
    return bad("bitmap checksum mismatch");
  r.bitmap.resize(bytes / 8);
  for (size_t w = 0; w < r.bitmap.size(); ++w)
    r.bitmap[w] = boost::endian::load_little_u64(u8(in) + kJobRecordHeaderSize + w * 8);
  // A bit past the last region would send a copy outside the job's range.
  if (region_count % 64 != 0 && (r.bitmap.back() >> (region_count % 64)) != 0)
    return bad("marks regions past its last one");
  return r;  // the Transfer checks progress_pointer against its range size
}

}  // namespace vgfs
