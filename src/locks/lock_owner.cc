#include "locks/lock_owner.h"

#include <git2.h>

#include <limits>
#include <nlohmann/json.hpp>

#include "locks/git_handle.h"

namespace wtd::locks {
namespace {

using Json = nlohmann::ordered_json;

Status FieldError(std::string_view field, std::string_view why) {
  return Status::Corruption("lock owner: field '" + std::string(field) + "' " + std::string(why));
}

// Reads integer field `name` into *out, checking JSON type and range.
template <typename T>
Status GetInt(const Json& obj, const char* name, bool required, T* out) {
  auto it = obj.find(name);
  if (it == obj.end()) {
    if (required) return FieldError(name, "is missing");
    *out = 0;
    return Status::OK();
  }
  if (!it->is_number_integer()) return FieldError(name, "is not an integer");
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return FieldError(name, "is out of range");
    }
    *out = static_cast<T>(v);
    return Status::OK();
  }
  int64_t v = it->get<int64_t>();
  if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      (v > 0 && static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
    return FieldError(name, "is out of range");
  }
  *out = static_cast<T>(v);
  return Status::OK();
}

Status GetString(const Json& obj, const char* name, std::string* out) {
  auto it = obj.find(name);
  if (it == obj.end()) return FieldError(name, "is missing");
  if (!it->is_string()) return FieldError(name, "is not a string");
  *out = it->get<std::string>();
  return Status::OK();
}

}  // namespace

std::string EncodeOwner(const LockOwner& o) {
  Json j;
  j["version"] = o.version;
  j["host"] = o.host;
  j["boot_id"] = o.boot_id;
  j["pid"] = o.pid;
  j["pid_start_time"] = o.pid_start_time;
  j["incarnation"] = o.incarnation;
  j["run_id"] = o.run_id;
  j["token"] = o.token;
  j["acquired_at_ms"] = o.acquired_at_ms;
  j["expires_at_ms"] = o.expires_at_ms;
  if (o.job_pid != 0) {
    j["job_pid"] = o.job_pid;
    j["job_start_time"] = o.job_start_time;
  }
  // Invalid UTF-8 in a string is replaced rather than thrown on.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<LockOwner> ParseOwner(std::string_view blob) {
  Json j = Json::parse(blob.begin(), blob.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption("lock owner: not JSON");
  if (!j.is_object()) return Status::Corruption("lock owner: not a JSON object");
  LockOwner o;
  WTD_RETURN_IF_ERROR(GetInt(j, "version", true, &o.version));
  if (o.version > kLockOwnerVersion) {
    return Status::NotSupported("lock owner: version " + std::to_string(o.version) +
                                " is newer than version " + std::to_string(kLockOwnerVersion) +
                                " that this wtd reads");
  }
  if (o.version < 1) return FieldError("version", "is 0");
  WTD_RETURN_IF_ERROR(GetString(j, "host", &o.host));
  if (o.host.empty()) return FieldError("host", "is empty");
  WTD_RETURN_IF_ERROR(GetString(j, "boot_id", &o.boot_id));
  WTD_RETURN_IF_ERROR(GetInt(j, "pid", true, &o.pid));
  if (o.pid <= 0) return FieldError("pid", "is not a positive pid");
  WTD_RETURN_IF_ERROR(GetInt(j, "pid_start_time", true, &o.pid_start_time));
  WTD_RETURN_IF_ERROR(GetInt(j, "incarnation", true, &o.incarnation));
  WTD_RETURN_IF_ERROR(GetInt(j, "run_id", true, &o.run_id));
  WTD_RETURN_IF_ERROR(GetInt(j, "token", true, &o.token));
  WTD_RETURN_IF_ERROR(GetInt(j, "acquired_at_ms", true, &o.acquired_at_ms));
  WTD_RETURN_IF_ERROR(GetInt(j, "expires_at_ms", true, &o.expires_at_ms));
  WTD_RETURN_IF_ERROR(GetInt(j, "job_pid", false, &o.job_pid));
  if (o.job_pid < 0) return FieldError("job_pid", "is negative");
  WTD_RETURN_IF_ERROR(GetInt(j, "job_start_time", false, &o.job_start_time));
  return o;
}

Result<std::string> BlobIdOf(const LockOwner& owner) {
  InitLibgit2();
  std::string bytes = EncodeOwner(owner);
  git_oid oid;
  int rc = git_odb_hash(&oid, bytes.data(), bytes.size(), GIT_OBJECT_BLOB);
  if (rc < 0) return GitError(rc, "hash lock owner blob");
  return OidToString(oid);
}

}  // namespace wtd::locks
