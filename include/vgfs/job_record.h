// JobRecord: the transfer-region record of one migration job as it is kept
// in the source PV's migration area (docs/records.md, docs/migration.md).
//
// Invariant: on disk, every region below `progress_pointer` is equal on both
// sides or has its bit set in `bitmap`. The record is written in two copies
// (generation g goes to copy g % 2), each a 4 KiB header plus the bitmap,
// checksummed, so a torn write leaves the previous generation readable.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/status.h"

namespace vgfs {

enum class SyncStatus : uint32_t { kCopying = 0, kResyncing = 1, kSynchronized = 2, kCompleted = 3, kAborted = 4, kFailed = 5 };
std::string_view sync_status_name(SyncStatus status);

struct JobRecord {
  uint64_t job_id = 0;
  uint64_t generation = 0;
  uint64_t progress_pointer = 0;  // bytes from the start of the range
  SyncStatus sync_status = SyncStatus::kCopying;
  bool paused = false;
  uint64_t rate_limit = 0;        // bytes/s, 0 = none
  uint64_t region_count = 0;
  std::vector<uint64_t> bitmap;   // bit r = region r may differ; (region_count + 63) / 64 words
};

constexpr uint64_t kJobRecordHeaderSize = 4096;
// A record whose generation is above this is invalid (the next write adds 1).
constexpr uint64_t kMaxJobRecordGeneration = uint64_t{1} << 62;
// 2^52 regions of at least 4 KiB cover 2^64 bytes; more is never a job.
constexpr uint64_t kMaxJobRecordRegions = uint64_t{1} << 52;
// Bytes of one copy of the record of a job with `region_count` regions.
uint64_t job_record_copy_size(uint64_t region_count);
// Bytes of the whole record (both copies) of such a job.
inline uint64_t job_record_size(uint64_t region_count) { return 2 * job_record_copy_size(region_count); }
// One copy of the record, exactly job_record_copy_size() bytes.
std::string encode_job_record(const JobRecord& record);
// Checks magic, checksums, job id, region count, status and generation
// before trusting anything (the Transfer bounds progress_pointer by its size).
Result<JobRecord> decode_job_record(std::string_view bytes, uint64_t job_id, uint64_t region_count);

}  // namespace vgfs
