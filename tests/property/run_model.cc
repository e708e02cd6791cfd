#include "property/run_model.h"

#include <algorithm>
#include <charconv>
#include <sstream>

namespace wtd::property {
namespace {

using S = RunState;

// How many interrupted attempts a run may have beyond max_attempts, as
// documented at RunStore::Interrupt.
constexpr uint32_t kInterruptAllowance = 3;

constexpr std::string_view kOpNames[kOpKindCount] = {
    "enqueue", "lease",  "prepare",  "ready", "running",   "spawn_failed", "finish",      "wake",
    "requeue", "cancel", "complete", "skip",  "contended", "renew",        "stale_renew",
};
constexpr std::string_view kOutcomeNames[] = {"success", "failure", "timeout"};

bool IsFinal(RunState s) {
  return s == S::kSucceeded || s == S::kFailed || s == S::kTimedOut || s == S::kCancelled ||
         s == S::kSkipped;
}

// The states in which a run holds its lock lease: every run leased here
// took one, so each of these states has one.
bool HoldsLease(RunState s) {
  return s == S::kLeased || s == S::kPreparing || s == S::kReady || s == S::kRunning ||
         s == S::kFinishing;
}

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t end = text.find(sep, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

bool ParseKey(std::string_view text, int* key) {
  return ParseNumber(text, key) && *key >= 0 && *key < kKeyCount;
}

// Fills the fields after the kind and key; false when they do not parse.
bool DecodeArgs(const std::vector<std::string_view>& parts, Op* op) {
  switch (op->kind) {
    case OpKind::kReady:
    case OpKind::kRequeue:
    case OpKind::kCancel: {
      if (parts.size() != 3) return false;
      Result<RunState> from = ParseRunState(parts[2]);
      if (!from.ok()) return false;
      op->from = *from;
      return true;
    }
    case OpKind::kRunning:
      op->process.boot_id = parts.size() >= 5 ? std::string(parts[4]) : "";
      op->process.supervisor = parts.size() == 6 && parts[5] == "s";
      return (parts.size() == 5 || op->process.supervisor) &&
             ParseNumber(parts[2], &op->process.pid) &&
             ParseNumber(parts[3], &op->process.start_time);
    case OpKind::kFinish:
      for (size_t i = 0; i < std::size(kOutcomeNames); ++i) {
        if (parts.size() == 3 && parts[2] == kOutcomeNames[i]) {
          op->outcome = static_cast<Outcome>(i);
          return true;
        }
      }
      return false;
    default:
      return parts.size() == 2;
  }
}

Op MakeOp(OpKind kind, int key, RunState from = S::kPending) {
  Op op;
  op.kind = kind;
  op.keys = {key};
  op.from = from;
  return op;
}

Op MakeFinish(int key, Outcome outcome) {
  Op op = MakeOp(OpKind::kFinish, key);
  op.outcome = outcome;
  return op;
}

// The state after a failed attempt: retry while attempts remain.
RunState AfterFailedAttempt(const ExpectedRun& r, RunState final_state) {
  return r.attempt < r.max_attempts ? S::kRetryWait : final_state;
}

// The state an attempt that ended with `outcome` leads to.
RunState OutcomeState(const ExpectedRun& r, Outcome outcome) {
  if (outcome == Outcome::kSuccess) return S::kSucceeded;
  return AfterFailedAttempt(r, outcome == Outcome::kTimeout ? S::kTimedOut : S::kFailed);
}

// The ops a scheduler could do on a run in `state`, repeated by weight.
std::vector<Op> StepsFrom(RunState state, int key, const ProcessIdentity& fresh) {
  switch (state) {
    case S::kPending:
      return {MakeOp(OpKind::kLease, key), MakeOp(OpKind::kLease, key), MakeOp(OpKind::kLease, key),
              MakeOp(OpKind::kCancel, key, S::kPending)};
    case S::kLeased:
      return {MakeOp(OpKind::kReady, key, S::kLeased),   MakeOp(OpKind::kReady, key, S::kLeased),
              MakeOp(OpKind::kReady, key, S::kLeased),   MakeOp(OpKind::kPrepare, key),
              MakeOp(OpKind::kRequeue, key, S::kLeased), MakeOp(OpKind::kCancel, key, S::kLeased),
              MakeOp(OpKind::kContended, key),           MakeOp(OpKind::kSkip, key)};
    case S::kPreparing:
      return {MakeOp(OpKind::kReady, key, S::kPreparing),
              MakeOp(OpKind::kReady, key, S::kPreparing),
              MakeOp(OpKind::kRequeue, key, S::kPreparing)};
    case S::kReady: {
      Op run = MakeOp(OpKind::kRunning, key);
      run.process = fresh;
      Op supervised = run;  // as the daemon starts every job now
      supervised.process.supervisor = true;
      return {supervised,
              supervised,
              run,
              MakeOp(OpKind::kSpawnFailed, key),
              MakeOp(OpKind::kRequeue, key, S::kReady),
              MakeOp(OpKind::kCancel, key, S::kReady)};
    }
    case S::kRunning:
      return {MakeFinish(key, Outcome::kSuccess),        MakeFinish(key, Outcome::kFailure),
              MakeFinish(key, Outcome::kFailure),        MakeFinish(key, Outcome::kTimeout),
              MakeOp(OpKind::kCancel, key, S::kRunning), MakeOp(OpKind::kRenew, key)};
    case S::kFinishing:
      return {MakeOp(OpKind::kComplete, key), MakeOp(OpKind::kComplete, key),
              MakeOp(OpKind::kComplete, key), MakeOp(OpKind::kSkip, key),
              MakeOp(OpKind::kRenew, key)};
    case S::kRetryWait:
      return {MakeOp(OpKind::kWake, key), MakeOp(OpKind::kWake, key),
              MakeOp(OpKind::kRequeue, key, S::kRetryWait),
              MakeOp(OpKind::kCancel, key, S::kRetryWait)};
    default:
      return {};
  }
}

template <typename T>
void Compare(std::string* diff, std::string_view field, const T& want, const T& got) {
  if (want == got) return;
  std::ostringstream line;
  line << (diff->empty() ? "" : ", ") << field << " is " << got << ", expected " << want;
  *diff += line.str();
}

}  // namespace

RunKey KeyFor(int key) {
  static constexpr char kHex[] = "0123456789abcdef";
  return RunKey{"/repo", key % 2 == 0 ? "main" : "wt1", "job" + std::to_string(key),
                std::string(40, kHex[key % 16])};
}

int KeyIndex(const RunKey& key) {
  for (int i = 0; i < kKeyCount; ++i) {
    if (KeyFor(i) == key) return i;
  }
  return -1;
}

uint32_t MaxAttemptsFor(int key) { return 1 + static_cast<uint32_t>(key % 3); }

std::string EncodeOp(const Op& op) {
  std::string text(kOpNames[static_cast<size_t>(op.kind)]);
  text += ':';
  for (size_t i = 0; i < op.keys.size(); ++i) {
    text += (i ? "," : "") + std::to_string(op.keys[i]);
  }
  switch (op.kind) {
    case OpKind::kEnqueue:
      return op.with_cursor ? text + ":c" : text;
    case OpKind::kReady:
    case OpKind::kRequeue:
    case OpKind::kCancel:
      return text + ":" + std::string(RunStateName(op.from));
    case OpKind::kRunning:
      return text + ":" + std::to_string(op.process.pid) + ":" +
             std::to_string(op.process.start_time) + ":" + op.process.boot_id +
             (op.process.supervisor ? ":s" : "");
    case OpKind::kFinish:
      return text + ":" + std::string(kOutcomeNames[static_cast<size_t>(op.outcome)]);
    default:
      return text;
  }
}

Result<Op> DecodeOp(std::string_view text) {
  Status bad = Status::InvalidArgument("bad op '" + std::string(text) + "'");
  std::vector<std::string_view> parts = Split(text, ':');
  if (parts.size() < 2) return bad;
  Op op;
  size_t kind = 0;
  while (kind < kOpKindCount && kOpNames[kind] != parts[0]) ++kind;
  if (kind == kOpKindCount) return bad;
  op.kind = static_cast<OpKind>(kind);
  for (std::string_view k : Split(parts[1], ',')) {
    int key = 0;
    if (!ParseKey(k, &key)) return bad;
    op.keys.push_back(key);
  }
  if (op.kind == OpKind::kEnqueue) {
    op.with_cursor = parts.size() == 3 && parts[2] == "c";
    if (parts.size() > 3 || (parts.size() == 3 && !op.with_cursor)) return bad;
    return op;
  }
  if (op.keys.size() != 1 || !DecodeArgs(parts, &op)) return bad;
  return op;
}

std::vector<int> NewKeys(const Model& model, const Op& op) {
  std::vector<int> fresh;
  if (op.kind != OpKind::kEnqueue) return fresh;
  for (int key : op.keys) {
    if (!model.runs.count(key) && std::find(fresh.begin(), fresh.end(), key) == fresh.end()) {
      fresh.push_back(key);
    }
  }
  return fresh;
}

bool IsAccepted(const Model& model, const Op& op) {
  if (op.kind == OpKind::kEnqueue) return true;
  auto it = model.runs.find(op.key());
  if (it == model.runs.end()) return false;
  RunState s = it->second.state;
  switch (op.kind) {
    case OpKind::kLease:
      return s == S::kPending;
    case OpKind::kPrepare:
      return s == S::kLeased;
    case OpKind::kReady:
      return s == op.from && (s == S::kLeased || s == S::kPreparing);
    case OpKind::kRunning:
    case OpKind::kSpawnFailed:
      return s == S::kReady;
    case OpKind::kFinish:
      return s == S::kRunning;
    case OpKind::kWake:
      return s == S::kRetryWait;
    case OpKind::kRequeue:
      return s == op.from &&
             (s == S::kLeased || s == S::kPreparing || s == S::kReady || s == S::kRetryWait);
    case OpKind::kCancel:
      return s == op.from && !IsFinal(s) && s != S::kFinishing;
    case OpKind::kComplete:
      return s == S::kFinishing;
    case OpKind::kSkip:
      return s == S::kLeased || s == S::kFinishing;
    case OpKind::kContended:
      return s == S::kLeased;
    case OpKind::kRenew:
      return HoldsLease(s);
    case OpKind::kStaleRenew:
      return false;
    case OpKind::kEnqueue:
      break;
  }
  return true;
}

void ApplyOp(Model* model, const Op& op, uint64_t incarnation) {
  if (op.kind == OpKind::kEnqueue) {
    for (int key : NewKeys(*model, op)) {
      ExpectedRun fresh;
      fresh.max_attempts = MaxAttemptsFor(key);
      model->runs[key] = fresh;
    }
    if (op.with_cursor) model->cursor_key = op.keys.back();
    return;
  }
  ExpectedRun& r = model->runs.at(op.key());
  switch (op.kind) {
    case OpKind::kLease:
      r.state = S::kLeased;
      break;
    case OpKind::kPrepare:
      r.state = S::kPreparing;
      break;
    case OpKind::kReady:
      r.state = S::kReady;
      break;
    case OpKind::kRunning:
      r.attempt += 1;
      r.process = op.process;
      r.incarnation = incarnation;
      r.state = S::kRunning;
      r.exit_file.reset();
      r.exit_code.reset();
      break;
    case OpKind::kSpawnFailed:
      r.attempt += 1;
      r.state = AfterFailedAttempt(r, S::kFailed);
      break;
    case OpKind::kFinish:
      r.finish_state = OutcomeState(r, op.outcome);
      r.state = S::kFinishing;
      break;
    case OpKind::kComplete:
      r.state = r.finish_state;
      break;
    case OpKind::kSkip:
      r.state = S::kSkipped;
      break;
    case OpKind::kContended:
      r.state = S::kRetryWait;
      r.lock_waits += 1;
      break;
    case OpKind::kRenew:
    case OpKind::kStaleRenew:
      break;
    case OpKind::kWake:
    case OpKind::kRequeue:
      r.state = S::kPending;
      break;
    case OpKind::kCancel:
      r.state = S::kCancelled;
      break;
    case OpKind::kEnqueue:
      break;
  }
}

int32_t ExitCodeOf(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return 0;
    case Outcome::kFailure:
      return 1;
    case Outcome::kTimeout:
      return -1;
  }
  return 1;
}

bool RecoverRun(ExpectedRun* run, uint64_t incarnation) {
  switch (run->state) {
    case S::kRunning:
      if (run->incarnation == incarnation) return false;  // that incarnation's own
      if (run->process.supervisor && run->exit_file) {    // the job ended unwatched
        run->state = OutcomeState(*run, *run->exit_file);
        run->exit_code = ExitCodeOf(*run->exit_file);
        run->exit_file.reset();
        return true;
      }
      if (run->process.supervisor && run->alive) {  // adopted: it runs on
        run->incarnation = incarnation;
        return true;
      }
      run->state =
          run->attempt < run->max_attempts + kInterruptAllowance ? S::kRetryWait : S::kFailed;
      return true;
    case S::kLeased:
    case S::kPreparing:
    case S::kReady:
      run->state = S::kPending;
      return true;
    case S::kFinishing:  // its receipt, then the state its outcome decided
      if (run->incarnation == incarnation) return false;
      run->state = run->finish_state;
      return true;
    default:
      return false;
  }
}

void RecoverAll(Model* model, uint64_t incarnation) {
  for (auto& [key, run] : model->runs) RecoverRun(&run, incarnation);
}

std::optional<Op> PlanStep(const Model& model, int key, int choice, const ProcessIdentity& fresh) {
  auto it = model.runs.find(key);
  if (it == model.runs.end()) {
    Op enqueue = MakeOp(OpKind::kEnqueue, key);
    enqueue.with_cursor = choice % 2 == 1;
    return enqueue;
  }
  std::vector<Op> steps = StepsFrom(it->second.state, key, fresh);
  if (steps.empty()) return std::nullopt;
  return steps[static_cast<size_t>(choice) % steps.size()];
}

std::string DiffRun(const ExpectedRun& want, const Run& got) {
  std::string diff;
  if (want.id != 0) Compare(&diff, "id", want.id, got.id);
  Compare(&diff, "state", RunStateName(want.state), RunStateName(got.state));
  Compare(&diff, "attempt", want.attempt, got.attempt);
  Compare(&diff, "max_attempts", want.max_attempts, got.max_attempts);
  Compare(&diff, "pid", want.process.pid, got.pid);
  Compare(&diff, "pid_start_time", want.process.start_time, got.pid_start_time);
  Compare(&diff, "boot_id", want.process.boot_id, got.boot_id);
  Compare(&diff, "incarnation", want.incarnation, got.incarnation);
  Compare(&diff, "lock_waits", want.lock_waits, got.lock_waits);
  Compare(&diff, "supervised", want.process.supervisor, got.supervised);
  if (want.exit_code) Compare(&diff, "exit_code", *want.exit_code, got.exit_code);
  if (want.state == S::kFinishing) {
    Compare(&diff, "finish_state", RunStateName(want.finish_state), RunStateName(got.finish_state));
  }
  return diff;
}

}  // namespace wtd::property
