// Encoding of the transfer-region record (include/vgfs/job_record.h).
#include "vgfs/job_record.h"

#include <cstring>
#include <fmt/format.h>

#include "vgfs/le_codec.h"
#include "vgfs/units.h"

namespace vgfs {

namespace {
constexpr char kMagic[8] = {'V', 'G', 'F', 'S', 'J', 'O', 'B', '1'};
enum : size_t {
  kId = 8, kGeneration = 16, kPointer = 24, kStatus = 32, kPaused = 36, kRegions = 40, kBitmapCrc = 48,
  kRateLimit = 56, kHeaderCrc = kJobRecordHeaderSize - 4,
};
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
  LeWriter out(job_record_copy_size(r.region_count));
  out.bytes(0, kMagic, 8);
  out.u64(kId, r.job_id);
  out.u64(kGeneration, r.generation);
  out.u64(kPointer, r.progress_pointer);
  out.u32(kStatus, static_cast<uint32_t>(r.sync_status));
  out.u32(kPaused, r.paused ? 1 : 0);
  out.u64(kRegions, r.region_count);
  out.u64(kRateLimit, r.rate_limit);
  const size_t bytes = (r.region_count + 63) / 64 * 8;
  for (size_t w = 0; w < r.bitmap.size(); ++w)
    out.u64(kJobRecordHeaderSize + w * 8, r.bitmap[w]);
  out.u32(kBitmapCrc, crc32c(out.data() + kJobRecordHeaderSize, bytes));
  out.u32(kHeaderCrc, crc32c(out.data(), kHeaderCrc));
  return out.take();
}

Result<JobRecord> decode_job_record(std::string_view in, uint64_t job_id, uint64_t region_count) {
  auto bad = [&](std::string what) {
    return Status::Error(EINVAL, fmt::format("record of job {} {}", job_id, what));
  };
  if (region_count > kMaxJobRecordRegions) return bad(fmt::format("has {} regions, too many", region_count));
  if (in.size() < job_record_copy_size(region_count)) return bad("is truncated");
  LeReader b(in);
  if (!b.equals(0, std::string_view(kMagic, 8))) return bad("has no record magic");
  if (b.u32(kHeaderCrc) != crc32c(in.data(), kHeaderCrc))
    return bad("header checksum mismatch");
  JobRecord r;
  r.job_id = b.u64(kId);
  r.generation = b.u64(kGeneration);
  r.progress_pointer = b.u64(kPointer);
  uint32_t status = b.u32(kStatus);
  r.paused = b.u32(kPaused) != 0;
  r.region_count = b.u64(kRegions);
  r.rate_limit = b.u64(kRateLimit);
  if (r.job_id != job_id) return bad(fmt::format("belongs to job {}", r.job_id));
  // generation + 1 must not wrap, or the next record would lose to this one.
  if (r.generation > kMaxJobRecordGeneration) return bad(fmt::format("has generation {}", r.generation));
  if (r.region_count != region_count) return bad(fmt::format("has {} regions, not {}", r.region_count, region_count));
  if (status > static_cast<uint32_t>(SyncStatus::kFailed)) return bad(fmt::format("has unknown status {}", status));
  r.sync_status = static_cast<SyncStatus>(status);
  const size_t bytes = (region_count + 63) / 64 * 8;
  if (b.u32(kBitmapCrc) != crc32c(in.data() + kJobRecordHeaderSize, bytes))
    return bad("bitmap checksum mismatch");
  r.bitmap.resize(bytes / 8);
  for (size_t w = 0; w < r.bitmap.size(); ++w)
    r.bitmap[w] = b.u64(kJobRecordHeaderSize + w * 8);
  // A bit past the last region would send a copy outside the job's range.
  if (region_count % 64 != 0 && (r.bitmap.back() >> (region_count % 64)) != 0)
    return bad("marks regions past its last one");
  return r;  // the Transfer checks progress_pointer against its range size
}

}  // namespace vgfs
