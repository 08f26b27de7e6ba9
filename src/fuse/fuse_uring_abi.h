// The FUSE over io_uring kernel ABI that Debian 12's <linux/fuse.h> (protocol
// 7.38) predates: protocol 7.42, Linux 6.14+, described in the kernel's
// Documentation/filesystems/fuse-io-uring.rst. Declared here, in vgfs's own
// namespace, so that a newer system header cannot clash with it.
//
// Invariant: every layout below is byte-for-byte the kernel's (checked by the
// static_asserts); nothing else in vgfs spells these numbers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgfs::fuse_uring_abi {

// INIT flag (bit 41, so bit 9 of fuse_init_in/out.flags2): offered by the
// kernel when /sys/module/fuse/parameters/enable_uring is Y; a server that
// sets it in its INIT reply must register ring entries for every possible CPU
// before the kernel sends it requests on rings.
constexpr uint64_t kOverIoUring = uint64_t{1} << 41;
constexpr uint32_t kOverIoUringFlags2 = static_cast<uint32_t>(kOverIoUring >> 32);

// Commands, in io_uring_sqe.cmd_op of an IORING_OP_URING_CMD on /dev/fuse.
enum Command : uint32_t {
  kRegister = 1,        // hand the kernel a header and a payload buffer; completes with a request
  kCommitAndFetch = 2,  // the reply is in the buffers; completes with the next request
};

// In the 80-byte command area of a 128-byte SQE (IORING_SETUP_SQE128).
struct CommandArea {
  uint64_t flags;
  uint64_t commit_id;  // ring_ent_in_out.commit_id of the request answered
  uint16_t qid;        // queue = CPU index
  uint8_t padding[6];
};
static_assert(sizeof(CommandArea) == 24 && sizeof(CommandArea) <= 80);

// After the in/out header and the op header in every entry's header buffer.
struct EntryInOut {
  uint64_t flags;
  uint64_t commit_id;    // set by the kernel with each request
  uint32_t payload_sz;   // request: bytes in the payload buffer; reply: the same for the answer
  uint32_t padding;
  uint64_t reserved;
};
static_assert(sizeof(EntryInOut) == 32);

// The header buffer (iov[0] of REGISTER).
struct RequestHeader {
  char in_out[128];  // struct fuse_in_header (request) / struct fuse_out_header (reply)
  char op_in[128];   // the opcode's first argument (fuse_read_in, fuse_write_in, ...), if any
  EntryInOut ring_ent_in_out;
};
static_assert(offsetof(RequestHeader, op_in) == 128 && offsetof(RequestHeader, ring_ent_in_out) == 256);
static_assert(sizeof(RequestHeader) == 288);

}  // namespace vgfs::fuse_uring_abi
