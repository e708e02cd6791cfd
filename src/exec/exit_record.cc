#include "exec/exit_record.h"

#include <charconv>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "base/file_util.h"

namespace wtd {
namespace {

constexpr char kFormat[] = "wtd-exit";
constexpr int kVersion = 1;

using nlohmann::json;

Status Bad(const std::string& what) { return Status::Corruption("exit record: " + what); }

// The field `name` of `o` as T, or Corruption naming it.
template <class T>
Status Field(const json& o, const char* name, T* out) {
  auto it = o.find(name);
  if (it == o.end()) return Bad("missing field '" + std::string(name) + "'");
  bool fits;
  if constexpr (std::is_same_v<T, bool>) {
    fits = it->is_boolean();
  } else if constexpr (std::is_same_v<T, std::string>) {
    fits = it->is_string();
  } else if constexpr (std::is_unsigned_v<T>) {
    fits =
        it->is_number_unsigned() && it->template get<uint64_t>() <= std::numeric_limits<T>::max();
  } else {
    fits = it->is_number_integer() &&
           it->template get<int64_t>() >= std::numeric_limits<T>::min() &&
           it->template get<int64_t>() <= std::numeric_limits<T>::max();
  }
  if (!fits) return Bad("field '" + std::string(name) + "' has the wrong type or range");
  *out = it->template get<T>();
  return Status::OK();
}

// Parses the decimal number at the front of *text and the one space or
// newline after it.
template <class T>
bool TakeNumber(std::string_view* text, char end, T* out) {
  // Canonical decimal only, as EncodeJobGroup writes it: no leading zero.
  if (text->size() > 1 && (*text)[0] == '0' && (*text)[1] >= '0' && (*text)[1] <= '9') {
    return false;
  }
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), *out);
  if (ec != std::errc() || p == text->data() || p == text->data() + text->size() || *p != end) {
    return false;
  }
  text->remove_prefix(static_cast<size_t>(p - text->data()) + 1);
  return true;
}

// The file at `path` decoded by `decode`: nullopt when there is no such
// file; the decoder's error names the path.
template <class T>
Result<std::optional<T>> ReadOptional(const std::string& path,
                                      Result<T> (*decode)(std::string_view)) {
  Result<std::string> text = ReadFile(path);
  if (!text.ok()) {
    if (text.status().IsNotFound()) return std::optional<T>();
    return text.status();
  }
  Result<T> value = decode(*text);
  if (!value.ok()) return value.status().WithContext(path);
  return std::optional<T>(std::move(*value));
}

}  // namespace

std::string EncodeExitRecord(const ExitRecord& r) {
  const AttemptOutcome& o = r.outcome;
  // In the documented order (exit_record.h), for a reader with `cat`.
  nlohmann::ordered_json j = {{"format", kFormat},
                              {"version", kVersion},
                              {"run", r.run_id},
                              {"attempt", r.attempt},
                              {"exit_code", o.exit_code},
                              {"signal", o.term_signal},
                              {"timed_out", o.timed_out},
                              {"stopped", o.stopped},
                              {"log_bytes", o.log_bytes},
                              {"log_truncated", o.log_truncated},
                              {"started_at_ms", r.started_at_ms},
                              {"ended_at_ms", r.ended_at_ms},
                              {"duration_ms", o.duration_ms},
                              {"error", o.error}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ExitRecord> DecodeExitRecord(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("not one JSON object");
  std::string format;
  WTD_RETURN_IF_ERROR(Field(j, "format", &format));
  if (format != kFormat) return Bad("format '" + format + "', not '" + kFormat + "'");
  int version = 0;
  WTD_RETURN_IF_ERROR(Field(j, "version", &version));
  if (version > kVersion) {
    return Status::NotSupported("exit record: version " + std::to_string(version) +
                                " is newer than this wtd reads (" + std::to_string(kVersion) + ")");
  }
  ExitRecord r;
  AttemptOutcome& o = r.outcome;
  WTD_RETURN_IF_ERROR(Field(j, "run", &r.run_id));
  WTD_RETURN_IF_ERROR(Field(j, "attempt", &r.attempt));
  WTD_RETURN_IF_ERROR(Field(j, "exit_code", &o.exit_code));
  WTD_RETURN_IF_ERROR(Field(j, "signal", &o.term_signal));
  WTD_RETURN_IF_ERROR(Field(j, "timed_out", &o.timed_out));
  WTD_RETURN_IF_ERROR(Field(j, "stopped", &o.stopped));
  WTD_RETURN_IF_ERROR(Field(j, "log_bytes", &o.log_bytes));
  WTD_RETURN_IF_ERROR(Field(j, "log_truncated", &o.log_truncated));
  WTD_RETURN_IF_ERROR(Field(j, "started_at_ms", &r.started_at_ms));
  WTD_RETURN_IF_ERROR(Field(j, "ended_at_ms", &r.ended_at_ms));
  WTD_RETURN_IF_ERROR(Field(j, "duration_ms", &o.duration_ms));
  WTD_RETURN_IF_ERROR(Field(j, "error", &o.error));
  if (r.run_id == 0 || r.attempt == 0) return Bad("run and attempt must be positive");
  return r;
}

Status WriteExitRecord(const std::string& path, const ExitRecord& r) {
  return WriteFileAtomic(path, EncodeExitRecord(r));
}

Result<std::optional<ExitRecord>> ReadExitRecord(const std::string& path, uint64_t run_id,
                                                 uint32_t attempt) {
  WTD_ASSIGN_OR_RETURN(std::optional<ExitRecord> r, ReadOptional(path, &DecodeExitRecord));
  if (r && (r->run_id != run_id || r->attempt != attempt)) {
    return Status::Corruption(path + ": exit record of run " + std::to_string(r->run_id) +
                              " attempt " + std::to_string(r->attempt) + ", not of run " +
                              std::to_string(run_id) + " attempt " + std::to_string(attempt));
  }
  return r;
}

std::string EncodeJobGroup(const JobGroup& g) {
  return std::to_string(g.pgid) + " " + std::to_string(g.start_time) + "\n";
}

Result<JobGroup> DecodeJobGroup(std::string_view text) {
  JobGroup g;
  std::string_view rest = text;
  if (!TakeNumber(&rest, ' ', &g.pgid) || !TakeNumber(&rest, '\n', &g.start_time) ||
      !rest.empty() || g.pgid <= 1) {
    return Status::Corruption("job group file: not 'PGID START_TIME'");
  }
  return g;
}

Result<std::optional<JobGroup>> ReadJobGroup(const std::string& path) {
  return ReadOptional(path, &DecodeJobGroup);
}

}  // namespace wtd
