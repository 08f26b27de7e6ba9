// Status and Result<T>: how every vgfs layer reports failure.
//
// Invariant: a failed Status carries an errno-style code (EINVAL, ENOENT,
// ENOSPC, EBUSY, EROFS, EIO, ...) and one sentence naming what is wrong and
// where. The code is what the control file and the FUSE layer return; the
// sentence is what a user reads. An ok Status has code 0 and no message.
#pragma once

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

namespace vgfs {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return {}; }
  static Status Error(int code, std::string message) { return Status(code, std::move(message)); }

  bool ok() const { return code_ == 0; }
  int code() const { return code_; }
  const std::string& message() const { return message_; }

  // Returns this error with "context: " put in front of the message.
  Status prefixed(const std::string& context) const {
    return ok() ? *this : Status(code_, context + ": " + message_);
  }

 private:
  Status(int code, std::string message) : code_(code), message_(std::move(message)) {}
  int code_ = 0;
  std::string message_;
};

// A value or the Status explaining why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}
  Result(Status status) : status_(std::move(status)) {}

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace vgfs

// Early return of a failed Status from a function returning Status or Result.
#define VGFS_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::vgfs::Status vgfs_status_ = (expr);       \
    if (!vgfs_status_.ok()) return vgfs_status_; \
  } while (0)

// Early return of a failed Result, or its value moved into `lhs`.
#define VGFS_ASSIGN_OR_RETURN(lhs, expr)         \
  do {                                           \
    auto vgfs_result_ = (expr);                  \
    if (!vgfs_result_.ok()) return vgfs_result_.status(); \
    lhs = std::move(*vgfs_result_);              \
  } while (0)
