// Fuzz target: decode_job_record (include/vgfs/job_record.h), one copy of a
// migration job's record in the source PV's migration area.
//
// Input: 1 flag byte, the expected job id and region count (8 bytes each,
// little-endian; the target passes them as the metadata would), then the
// record bytes. Flag bit 0 set: the target rewrites the bitmap and header
// CRC32Cs before decoding, so the fuzzer gets past them. Flag bit 1 clear:
// the region count is taken modulo 65536 (realistic jobs), set: as it is.
//
// Oracle: an accepted record belongs to the job asked for, has a known
// status, a bitmap with a bit for every region, and encode → decode gives
// it back unchanged.
//
// Regression (fuzz/regressions/job_record/region-count-wraps): once
// (region_count + 63) / 64 wrapped for counts within 63 of 2^64, so such a
// record decodes with an empty bitmap. Callers derive the count from
// validated metadata (at most 2^52), so only the decoder's own promise breaks.
#include "fuzz_util.h"
#include "vgfs/job_record.h"
#include "vgfs/units.h"

using namespace vgfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const uint64_t job_id = in.u64();
  uint64_t regions = in.u64();
  if (!(flags & 2)) regions %= 65536;
  std::string bytes(in.rest());
  if ((flags & 1) && bytes.size() >= kJobRecordHeaderSize) {
    const uint64_t bitmap_bytes = (regions + 63) / 64 * 8;  // as the decoder computes it
    if (bitmap_bytes <= bytes.size() - kJobRecordHeaderSize)
      fuzz::store_le32(&bytes, 48, crc32c(bytes.data() + kJobRecordHeaderSize, bitmap_bytes));
    fuzz::store_le32(&bytes, kJobRecordHeaderSize - 4, crc32c(bytes.data(), kJobRecordHeaderSize - 4));
  }

  Result<JobRecord> r = decode_job_record(bytes, job_id, regions);
  if (!r.ok()) {
    fuzz::check_error(r.status());
    return 0;
  }
  FUZZ_CHECK(r->job_id == job_id, "a record of another job");
  FUZZ_CHECK(r->region_count == regions, "a record with another region count");
  FUZZ_CHECK(r->sync_status <= SyncStatus::kFailed, "an unknown sync status");
  FUZZ_CHECK(static_cast<unsigned __int128>(r->bitmap.size()) * 64 >= regions,
             "the bitmap has fewer bits than the job has regions");
  const std::string encoded = encode_job_record(*r);
  FUZZ_CHECK(encoded.size() == job_record_copy_size(regions), "encode_job_record size");
  Result<JobRecord> again = decode_job_record(encoded, job_id, regions);
  FUZZ_CHECK(again.ok(), "an accepted record re-encoded does not decode: " + again.status().message());
  FUZZ_CHECK(again->generation == r->generation && again->progress_pointer == r->progress_pointer &&
                 again->sync_status == r->sync_status && again->paused == r->paused &&
                 again->rate_limit == r->rate_limit && again->bitmap == r->bitmap,
             "decode(encode(record)) != record");
  return 0;
}
