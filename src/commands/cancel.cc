// `cancel RUN_ID`: a run that has not ended ends `cancelled` (error
// "cancelled by wtctl"), not failed and not retried. With the daemon up it
// is done on the loop thread (Scheduler::Cancel): a running job's process
// group is killed first (SIGTERM, SIGKILL after the kill grace) and its lock
// and slot given back. With the daemon down (kStoreWrite, under the PID-file
// lock) only a pending or retry_wait run is cancelled, in the store; any
// other needs the running daemon. The transition is committed before the
// answer.
#include "commands/defs.h"
#include "report/run_view.h"
#include "report/table.h"

namespace wtd {
namespace {

constexpr char kReason[] = "cancelled by wtctl";

Result<json> Request(const CliArgs& a) {
  WTD_ASSIGN_OR_RETURN(int64_t id, RunIdArg(a));
  return json{{"id", id}};
}

Status AlreadyEnded(const Run& r) {
  return Status::FailedPrecondition("run " + std::to_string(r.id) + " is already " +
                                    std::string(RunStateName(r.state)));
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(int64_t id, IntArg(args, "id", -1, 1));
  if (id < 0) return Status::InvalidArgument("args.id: a run id is required");
  uint64_t run_id = static_cast<uint64_t>(id);
  // Read first: an unknown or ended run is refused the same way up or down.
  WTD_ASSIGN_OR_RETURN(Run before, c.runs->Get(run_id));
  if (IsTerminal(before.state)) return AlreadyEnded(before);
  Run after;
  if (c.daemon != nullptr) {
    WTD_ASSIGN_OR_RETURN(after, c.daemon->Cancel(run_id, kReason));
  } else {
    if (before.state != RunState::kPending && before.state != RunState::kRetryWait) {
      return Status::FailedPrecondition(
          "run " + std::to_string(id) + " is " + std::string(RunStateName(before.state)) +
          ": with the daemon down only a pending or retry_wait run can be cancelled; "
          "cancelling it needs the running daemon");
    }
    WTD_ASSIGN_OR_RETURN(after, c.runs->Cancel(run_id, before.state, kReason));
  }
  return json{{"from", std::string(RunStateName(before.state))}, {"run", RunToJson(after)}};
}

std::string Print(const json& result) {
  const json& r = result["run"];
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "JOB", "FROM", "STATE", "ERROR"},
      {Cell(r["id"]), Cell(r["job"]), Cell(result["from"]), Cell(r["state"]), Cell(r["error"])}};
  return FormatTable(rows);
}

}  // namespace

const CommandDef& CancelCommand() {
  static const CommandDef kDef = {
      .name = "cancel",
      .usage = "cancel RUN_ID",
      .summary = "end a run cancelled, killing its job's process group if it runs",
      .access = Access::kStoreWrite,
      .request = Request,
      .handle = Handle,
      .print = Print,
  };
  return kDef;
}

}  // namespace wtd
