// Status and Result<T>: how every fallible call in wtd reports failure.
//
// A Status is OK or carries a code and a message that names what failed (the
// file, key, field or option). Result<T> holds either a value or a non-OK
// Status. Both are [[nodiscard]]; ignoring one is explicit: `(void)s;` or
// `s.IgnoreError();`. Nothing in wtd throws across a module boundary: adapters
// for RocksDB, libgit2, cereal and Boost convert their errors to Status.
//
// Thread-safety: plain values; const methods may be called concurrently.
#ifndef WTD_STATUS_H_
#define WTD_STATUS_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace wtd {

class [[nodiscard]] Status {
 public:
  enum class Code : unsigned char {
    kOk = 0,
    kNotFound,
    kCorruption,
    kIOError,
    kInvalidArgument,
    kBusy,
    kAborted,
    kFailedPrecondition,
    kNotSupported,
  };

  Status() = default;  // OK

  static Status OK() { return Status(); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status InvalidArgument(std::string msg) {
    return Status(Code::kInvalidArgument, std::move(msg));
  }
  static Status Busy(std::string msg) { return Status(Code::kBusy, std::move(msg)); }
  static Status Aborted(std::string msg) { return Status(Code::kAborted, std::move(msg)); }
  static Status FailedPrecondition(std::string msg) {
    return Status(Code::kFailedPrecondition, std::move(msg));
  }
  static Status NotSupported(std::string msg) {
    return Status(Code::kNotSupported, std::move(msg));
  }
  // IOError from errno: "<what>: <strerror(err)>".
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }
  bool IsIOError() const { return code_ == Code::kIOError; }
  bool IsInvalidArgument() const { return code_ == Code::kInvalidArgument; }
  bool IsBusy() const { return code_ == Code::kBusy; }
  bool IsAborted() const { return code_ == Code::kAborted; }
  bool IsFailedPrecondition() const { return code_ == Code::kFailedPrecondition; }

  // Returns a copy whose message is "<context>: <message>"; OK stays OK.
  Status WithContext(std::string_view context) const;

  // "OK" or "<CodeName>: <message>".
  std::string ToString() const;

  // Marks a deliberately ignored error.
  void IgnoreError() const {}

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code code);

// A value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  // REQUIRES: !status.ok()
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok()) status_ = Status::FailedPrecondition("Result built from an OK status");
  }
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }

  // REQUIRES: ok()
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

  T value_or(T fallback) const& { return ok() ? *value_ : std::move(fallback); }

 private:
  Status status_;  // OK when value_ is set
  std::optional<T> value_;
};

}  // namespace wtd

#define WTD_CONCAT_INNER_(a, b) a##b
#define WTD_CONCAT_(a, b) WTD_CONCAT_INNER_(a, b)

// Returns the Status from the enclosing function when `expr` is not OK.
#define WTD_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::wtd::Status wtd_status_ = (expr);        \
    if (!wtd_status_.ok()) return wtd_status_; \
  } while (0)

// `WTD_ASSIGN_OR_RETURN(auto x, MakeX());` declares x from a Result or returns
// its Status. (`lhs` is a declaration and `tmp` a name: neither can be
// parenthesized.)
// NOLINTBEGIN(bugprone-macro-parentheses)
#define WTD_ASSIGN_OR_RETURN(lhs, expr) \
  WTD_ASSIGN_OR_RETURN_IMPL_(WTD_CONCAT_(wtd_result_, __LINE__), lhs, expr)
#define WTD_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
// NOLINTEND(bugprone-macro-parentheses)

#endif  // WTD_STATUS_H_
