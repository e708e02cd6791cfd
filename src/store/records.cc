#include "store/records.h"

#include <cereal/archives/portable_binary.hpp>
#include <limits>
#include <sstream>

#include "base/crc32c.h"

namespace wtd {
namespace {
// The payload size of the record being decoded on this thread: no string in
// it can be longer, so a forged length is refused before any allocation.
thread_local size_t decode_limit = std::numeric_limits<size_t>::max();
}  // namespace
}  // namespace wtd

// std::string in cereal's own layout (size tag, then the bytes), with the
// length checked against the payload before the string is sized.
namespace cereal {
inline void CEREAL_SAVE_FUNCTION_NAME(PortableBinaryOutputArchive& ar, const std::string& s) {
  ar(make_size_tag(static_cast<size_type>(s.size())));
  ar(binary_data(s.data(), s.size()));
}
inline void CEREAL_LOAD_FUNCTION_NAME(PortableBinaryInputArchive& ar, std::string& s) {
  size_type size = 0;
  ar(make_size_tag(size));
  if (size > wtd::decode_limit) throw Exception("string length exceeds the record");
  s.resize(static_cast<size_t>(size));
  ar(binary_data(s.data(), static_cast<size_t>(size)));
}
}  // namespace cereal

// cereal serialization of each record. A field added later goes under
// `if (version >= N)` and CEREAL_CLASS_VERSION is bumped to N.
namespace wtd {

// A bool as one byte that must be 0 or 1: any other byte would load an
// invalid bool (undefined behaviour), so it is refused as corruption.
template <class Archive>
void SerializeBool(Archive& ar, bool& b) {
  uint8_t v = b ? 1 : 0;
  ar(v);
  if constexpr (Archive::is_loading::value) {
    if (v > 1) throw cereal::Exception("invalid bool byte " + std::to_string(v));
    b = v == 1;
  }
}

template <class Archive>
void serialize(Archive& ar, RunKey& k) {
  ar(k.repo, k.worktree, k.job, k.sha);
}

// Name/value pairs as a count, then each name and value; the count is
// checked against the payload before the vector is sized.
template <class Archive>
void SerializePairs(Archive& ar, std::vector<std::pair<std::string, std::string>>& v) {
  uint64_t n = v.size();
  ar(n);
  if constexpr (Archive::is_loading::value) {
    if (n > decode_limit) throw cereal::Exception("pair count exceeds the record");
    v.resize(static_cast<size_t>(n));
  }
  for (auto& [name, value] : v) ar(name, value);
}

template <class Archive>
void serialize(Archive& ar, Run& r, const std::uint32_t version) {
  ar(r.id, r.key, r.branch, r.worktree_path, r.state, r.attempt, r.max_attempts, r.retry_backoff_ms,
     r.timeout_ms, r.created_at_ms, r.updated_at_ms, r.started_at_ms, r.finished_at_ms,
     r.not_before_ms, r.pid, r.pid_start_time, r.boot_id, r.incarnation, r.exit_code, r.term_signal,
     r.duration_ms, r.log_path, r.error);
  if (version >= 2) {
    ar(r.log_bytes);
    SerializeBool(ar, r.log_truncated);
  }
  if (version >= 3) {
    ar(r.command);
    SerializePairs(ar, r.env);
    ar(r.commit_subject, r.commit_author, r.commit_time_s);
  }
  if (version >= 4) ar(r.lock_waits, r.lease_token, r.finish_state);
  if (version >= 5) ar(r.isolation, r.keep_worktree, r.slot);
  if (version >= 6) ar(r.key.series);
  if (version >= 7) SerializeBool(ar, r.supervised);
}

// A vector of strings as a count, then each string. The count is checked
// against the payload (every string takes at least its size tag) before the
// vector is sized.
template <class Archive>
void SerializeStrings(Archive& ar, std::vector<std::string>& v) {
  uint64_t n = v.size();
  ar(n);
  if constexpr (Archive::is_loading::value) {
    if (n > decode_limit) throw cereal::Exception("string count exceeds the record");
    v.resize(static_cast<size_t>(n));
  }
  for (std::string& s : v) ar(s);
}

template <class Archive>
void serialize(Archive& ar, Cursor& c, const std::uint32_t version) {
  ar(c.sha, c.commit_time_s, c.updated_at_ms);
  if (version >= 2) {
    SerializeStrings(ar, c.frontier);
    ar(c.skipped);
  }
}

template <class Archive>
void serialize(Archive& ar, Lease& l, const std::uint32_t version) {
  ar(l.host, l.boot_id, l.pid, l.pid_start_time, l.incarnation, l.acquired_at_ms, l.expires_at_ms,
     l.fencing_token, l.run_id);
  if (version >= 2) {
    ar(l.repo, l.name, l.state, l.ref_blob, l.prev_ref_blob, l.job_pid, l.job_start_time);
  }
}

template <class Archive>
void serialize(Archive& ar, WatchedRepos& w, const std::uint32_t version) {
  SerializeStrings(ar, w.paths);
  if (version >= 2) ar(w.locks_root, w.notes_ref, w.lock_grace_ms);
}

template <class Archive>
void serialize(Archive& ar, IdemOwner& o) {
  ar(o.host, o.boot_id, o.pid, o.pid_start_time, o.incarnation);
}

template <class Archive>
void serialize(Archive& ar, IdemRecord& r, const std::uint32_t version) {
  ar(r.op, r.params, r.status, r.attempts, r.next_retry_at_ms, r.result, r.rollback_payload,
     r.error);
  if (version >= 2) ar(r.first_at_ms, r.last_at_ms, r.owner);
}

template <class Archive>
void serialize(Archive& ar, Slot& s, const std::uint32_t /*version*/) {
  ar(s.name, s.repo, s.path, s.sha, s.state, s.run_id, s.idem_key, s.branch, s.created_at_ms,
     s.updated_at_ms);
}

// A vector as a count, then each element; the count is checked against the
// payload (every element takes at least one byte) before the vector is sized.
template <class Archive, typename T>
void SerializeVector(Archive& ar, std::vector<T>& v) {
  uint64_t n = v.size();
  ar(n);
  if constexpr (Archive::is_loading::value) {
    if (n > decode_limit) throw cereal::Exception("element count exceeds the record");
    v.resize(static_cast<size_t>(n));
  }
  for (T& x : v) ar(x);
}

template <class Archive>
void serialize(Archive& ar, RunStatsRun& r) {
  ar(r.run_id, r.duration_ms, r.state, r.at_ms);
}

template <class Archive>
void serialize(Archive& ar, RunStats& s, const std::uint32_t /*version*/) {
  ar(s.repo, s.worktree, s.job, s.hour_ms, s.succeeded, s.failed, s.timed_out, s.cancelled,
     s.skipped, s.attempts, s.timed, s.duration_sum_ms, s.lock_waits);
  SerializeVector(ar, s.histogram);
  SerializeVector(ar, s.slowest);
  SerializeVector(ar, s.failures);
}

template <class Archive>
void serialize(Archive& ar, Event& e, const std::uint32_t /*version*/) {
  ar(e.run_id, e.from, e.to, e.attempt, e.at_ms);
}

}  // namespace wtd

CEREAL_CLASS_VERSION(wtd::Run, 7)
CEREAL_CLASS_VERSION(wtd::Slot, 1)
CEREAL_CLASS_VERSION(wtd::Cursor, 2)
CEREAL_CLASS_VERSION(wtd::Lease, 2)
CEREAL_CLASS_VERSION(wtd::WatchedRepos, 2)
CEREAL_CLASS_VERSION(wtd::IdemRecord, 2)
CEREAL_CLASS_VERSION(wtd::Event, 1)
CEREAL_CLASS_VERSION(wtd::RunStats, 1)

namespace wtd {
namespace {

constexpr std::string_view kStateNames[kRunStateCount] = {
    "pending",   "leased", "preparing", "ready",     "running",   "retry_wait",
    "succeeded", "failed", "timed_out", "cancelled", "finishing", "skipped",
};
constexpr std::string_view kSlotStateNames[kSlotStateCount] = {"creating", "free",   "busy",
                                                               "kept",     "manual", "removing"};
constexpr std::string_view kLeaseStateNames[kLeaseStateCount] = {"held", "releasing"};
constexpr std::string_view kIdemStatusNames[kIdemStatusCount] = {
    "in_progress", "completed", "failed", "rolled_back", "blocked"};

std::string_view KindName(RecordKind kind) {
  switch (kind) {
    case RecordKind::kRun:
      return "run";
    case RecordKind::kCursor:
      return "cursor";
    case RecordKind::kLease:
      return "lease";
    case RecordKind::kIdem:
      return "idempotency record";
    case RecordKind::kEvent:
      return "event";
    case RecordKind::kWatchedRepos:
      return "watched repositories";
    case RecordKind::kSlot:
      return "worktree slot";
    case RecordKind::kRunStats:
      return "run stats";
  }
  return "record";
}

template <typename T>
std::string Encode(RecordKind kind, const T& record) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(record);
  }
  return SealRecord(kind, out.str());
}

template <typename T>
Result<T> Decode(RecordKind kind, std::string_view value) {
  WTD_ASSIGN_OR_RETURN(std::string_view payload, UnsealRecord(kind, value));
  T record;
  struct LimitGuard {
    explicit LimitGuard(size_t n) { decode_limit = n; }
    ~LimitGuard() { decode_limit = std::numeric_limits<size_t>::max(); }
  } guard(payload.size());
  try {
    std::istringstream in{std::string(payload)};
    cereal::PortableBinaryInputArchive ar(in);
    ar(record);
    if (in.peek() != std::char_traits<char>::eof()) {
      return Status::Corruption(std::string(KindName(kind)) + ": trailing bytes after record");
    }
  } catch (const std::exception& e) {
    return Status::Corruption(std::string(KindName(kind)) + ": undecodable: " + e.what());
  }
  return record;
}

void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetFixed32(std::string_view in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

uint32_t EnvelopeCrc(char kind, std::string_view payload) {
  return Crc32c(payload, Crc32c(std::string_view(&kind, 1)));
}

}  // namespace

std::string_view RunStateName(RunState s) {
  auto i = static_cast<size_t>(s);
  return i < kRunStateCount ? kStateNames[i] : "invalid";
}

Result<RunState> ParseRunState(std::string_view name) {
  for (int i = 0; i < kRunStateCount; ++i) {
    if (kStateNames[i] == name) return static_cast<RunState>(i);
  }
  return Status::InvalidArgument("unknown run state '" + std::string(name) + "'");
}

bool IsTerminal(RunState s) {
  return s == RunState::kSucceeded || s == RunState::kFailed || s == RunState::kTimedOut ||
         s == RunState::kCancelled || s == RunState::kSkipped;
}

std::string_view SlotStateName(SlotState s) {
  auto i = static_cast<size_t>(s);
  return i < kSlotStateCount ? kSlotStateNames[i] : "invalid";
}

std::string_view IsolationName(Isolation i) {
  return i == Isolation::kInplace ? "inplace" : "commit";
}

std::string_view KeepWorktreeName(KeepWorktree k) {
  return k == KeepWorktree::kOnFailure ? "on_failure" : "never";
}

std::string_view LeaseStateName(LeaseState s) {
  auto i = static_cast<size_t>(s);
  return i < kLeaseStateCount ? kLeaseStateNames[i] : "invalid";
}

std::string_view IdemStatusName(IdemStatus s) {
  auto i = static_cast<size_t>(s);
  return i < kIdemStatusCount ? kIdemStatusNames[i] : "invalid";
}

Result<IdemStatus> ParseIdemStatus(std::string_view name) {
  for (int i = 0; i < kIdemStatusCount; ++i) {
    if (kIdemStatusNames[i] == name) return static_cast<IdemStatus>(i);
  }
  return Status::InvalidArgument("unknown idempotency status '" + std::string(name) + "'");
}

std::string SealRecord(RecordKind kind, std::string_view payload) {
  std::string out;
  out.reserve(kRecordHeaderSize + payload.size());
  out.push_back(static_cast<char>(kRecordMagic));
  out.push_back(static_cast<char>(kind));
  PutFixed32(&out, EnvelopeCrc(static_cast<char>(kind), payload));
  out.append(payload);
  return out;
}

Result<std::string_view> UnsealRecord(RecordKind kind, std::string_view value) {
  std::string name(KindName(kind));
  if (value.size() < kRecordHeaderSize) {
    return Status::Corruption(name + ": truncated (" + std::to_string(value.size()) + " bytes)");
  }
  if (static_cast<uint8_t>(value[0]) != kRecordMagic) {
    return Status::Corruption(name + ": bad magic byte");
  }
  if (static_cast<uint8_t>(value[1]) != static_cast<uint8_t>(kind)) {
    return Status::Corruption(name + ": record kind " +
                              std::to_string(static_cast<uint8_t>(value[1])) + " stored here");
  }
  std::string_view payload = value.substr(kRecordHeaderSize);
  if (GetFixed32(value.substr(2)) != EnvelopeCrc(value[1], payload)) {
    return Status::Corruption(name + ": checksum mismatch");
  }
  return payload;
}

std::string EncodeRun(const Run& r) { return Encode(RecordKind::kRun, r); }
std::string EncodeCursor(const Cursor& c) { return Encode(RecordKind::kCursor, c); }
std::string EncodeLease(const Lease& l) { return Encode(RecordKind::kLease, l); }
std::string EncodeIdem(const IdemRecord& r) { return Encode(RecordKind::kIdem, r); }
std::string EncodeEvent(const Event& e) { return Encode(RecordKind::kEvent, e); }
std::string EncodeSlot(const Slot& s) { return Encode(RecordKind::kSlot, s); }
std::string EncodeRunStats(const RunStats& s) { return Encode(RecordKind::kRunStats, s); }
std::string EncodeWatchedRepos(const WatchedRepos& w) {
  return Encode(RecordKind::kWatchedRepos, w);
}

Result<Run> DecodeRun(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(Run r, Decode<Run>(RecordKind::kRun, v));
  if (static_cast<size_t>(r.state) >= kRunStateCount) {
    return Status::Corruption("run: invalid state " + std::to_string(static_cast<int>(r.state)));
  }
  if (static_cast<uint8_t>(r.isolation) > 1 || static_cast<uint8_t>(r.keep_worktree) > 1) {
    return Status::Corruption("run: invalid isolation or keep_worktree");
  }
  if (static_cast<size_t>(r.finish_state) >= kRunStateCount) {
    return Status::Corruption("run: invalid finish state " +
                              std::to_string(static_cast<int>(r.finish_state)));
  }
  return r;
}
Result<Cursor> DecodeCursor(std::string_view v) { return Decode<Cursor>(RecordKind::kCursor, v); }
Result<Lease> DecodeLease(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(Lease l, Decode<Lease>(RecordKind::kLease, v));
  if (static_cast<size_t>(l.state) >= kLeaseStateCount) {
    return Status::Corruption("lease: invalid state " + std::to_string(static_cast<int>(l.state)));
  }
  return l;
}
Result<WatchedRepos> DecodeWatchedRepos(std::string_view v) {
  return Decode<WatchedRepos>(RecordKind::kWatchedRepos, v);
}
Result<IdemRecord> DecodeIdem(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(IdemRecord r, Decode<IdemRecord>(RecordKind::kIdem, v));
  if (static_cast<size_t>(r.status) >= kIdemStatusCount) {
    return Status::Corruption("idempotency record: invalid status " +
                              std::to_string(static_cast<int>(r.status)));
  }
  return r;
}
Result<Slot> DecodeSlot(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(Slot s, Decode<Slot>(RecordKind::kSlot, v));
  if (static_cast<size_t>(s.state) >= kSlotStateCount) {
    return Status::Corruption("worktree slot: invalid state " +
                              std::to_string(static_cast<int>(s.state)));
  }
  return s;
}
Result<RunStats> DecodeRunStats(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(RunStats s, Decode<RunStats>(RecordKind::kRunStats, v));
  if (!s.histogram.empty() && s.histogram.size() != kRunStatsBuckets) {
    return Status::Corruption("run stats: " + std::to_string(s.histogram.size()) +
                              " histogram buckets, expected " + std::to_string(kRunStatsBuckets));
  }
  if (s.slowest.size() > kRunStatsSlowest || s.failures.size() > kRunStatsFailures) {
    return Status::Corruption("run stats: too many runs named");
  }
  for (const std::vector<RunStatsRun>* list : {&s.slowest, &s.failures}) {
    for (const RunStatsRun& r : *list) {
      if (static_cast<size_t>(r.state) >= kRunStateCount) {
        return Status::Corruption("run stats: invalid state " +
                                  std::to_string(static_cast<int>(r.state)));
      }
    }
  }
  return s;
}
Result<Event> DecodeEvent(std::string_view v) {
  WTD_ASSIGN_OR_RETURN(Event e, Decode<Event>(RecordKind::kEvent, v));
  if (static_cast<size_t>(e.from) >= kRunStateCount ||
      static_cast<size_t>(e.to) >= kRunStateCount) {
    return Status::Corruption("event: invalid state");
  }
  return e;
}

}  // namespace wtd
