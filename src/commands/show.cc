// `show RUN_ID`: one run, every field. Read-only: answered from the store
// when the daemon is down. `logs` uses it to find a run's log.
#include "commands/defs.h"
#include "report/run_view.h"
#include "report/table.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  WTD_ASSIGN_OR_RETURN(int64_t id, RunIdArg(a));
  return json{{"id", id}};
}

Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(int64_t id, IntArg(args, "id", -1, 1));
  if (id < 0) return Status::InvalidArgument("args.id: a run id is required");
  WTD_ASSIGN_OR_RETURN(Run r, c.runs->Get(static_cast<uint64_t>(id)));
  return RunToJson(r);
}

std::string Print(const json& run) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& [key, value] : run.items()) rows.push_back({key, Cell(value)});
  return FormatTable(rows);
}

}  // namespace

const CommandDef& ShowCommand() {
  static const CommandDef kDef = {
      .name = "show",
      .usage = "show RUN_ID",
      .summary = "one run, every field",
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
  };
  return kDef;
}

}  // namespace wtd
