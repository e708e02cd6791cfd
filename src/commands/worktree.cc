// `worktree list|create|remove`: the daemon-owned worktrees
// (docs/design/worktrees.md). Works with the daemon down (kStoreWrite): the
// handler then makes its own WorktreeSlots over the store, under the
// PID-file lock.
#include <filesystem>
#include <memory>

#include "base/file_util.h"
#include "commands/defs.h"
#include "commands/slots_of.h"
#include "git/repository.h"
#include "git/worktree_ops.h"
#include "report/table.h"
#include "worktrees/slots.h"

namespace wtd {
namespace {

Result<json> Request(const CliArgs& a) {
  std::string action = a.positional.empty() ? "list" : a.positional[0];
  json args = {{"action", action}};
  if (action == "list") {
    if (a.positional.size() > 1) return Status::InvalidArgument("unexpected " + a.positional[1]);
    if (a.Has("repo") || a.Has("base")) {
      return Status::InvalidArgument("--repo and --base go with create");
    }
  } else if (action == "remove") {
    if (a.positional.size() != 2) return Status::InvalidArgument("remove takes one NAME");
    if (a.Has("repo") || a.Has("base")) {
      return Status::InvalidArgument("--repo and --base go with create");
    }
    args["name"] = a.positional[1];
  } else if (action == "create") {
    if (a.positional.size() != 2) return Status::InvalidArgument("create takes one NAME");
    WTD_RETURN_IF_ERROR(CheckSlotName(a.positional[1]));
    args["name"] = a.positional[1];
    if (a.Has("repo")) {
      std::error_code ec;
      std::filesystem::path abs = std::filesystem::absolute(a.flags.at("repo"), ec);
      args["repo"] = ec ? a.flags.at("repo") : abs.string();
    }
    args["base"] = a.Has("base") ? a.flags.at("base") : "HEAD";
  } else {
    return Status::InvalidArgument("unknown worktree action " + action + " (list, create, remove)");
  }
  return args;
}

bool Writes(const json& args) { return args.value("action", "list") != "list"; }

json SlotJson(const Slot& s) {
  return {{"name", s.name},
          {"path", s.path},
          {"repo", s.repo},
          {"sha", s.sha.empty() ? json(nullptr) : json(s.sha)},
          {"state", std::string(SlotStateName(s.state))},
          {"run_id", s.run_id == 0 ? json(nullptr) : json(s.run_id)}};
}

json ActionsJson(const std::vector<SlotAction>& actions) {
  json out = json::array();
  for (const SlotAction& a : actions) {
    out.push_back({{"kind", a.kind},
                   {"name", a.name.empty() ? json(nullptr) : json(a.name)},
                   {"detail", a.detail}});
  }
  return out;
}

// The repository of `create`: --repo, else the one watched repository.
Result<std::string> RepoOf(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(std::string repo, StringArg(args, "repo"));
  if (!repo.empty()) return git::ResolveRepoRoot(repo);
  Result<WatchedRepos> watched = c.runs->WatchedRepos();
  if (watched.ok() && watched->paths.size() == 1) return watched->paths[0];
  return Status::InvalidArgument("create: say which repository with --repo (the daemon watches " +
                                 std::to_string(watched.ok() ? watched->paths.size() : 0) + ")");
}

Result<json> Handle(const CommandContext& c, const json& args) {
  std::unique_ptr<SlotsOnStore> own;
  WorktreeSlots* slots = SlotsOf(c, &own);
  WTD_ASSIGN_OR_RETURN(std::string action, StringArg(args, "action"));
  if (action.empty() || action == "list") {
    WTD_ASSIGN_OR_RETURN(std::vector<Slot> all, slots->List());
    json out = json::array();
    for (const Slot& s : all) out.push_back(SlotJson(s));
    return json{{"worktrees", out}};
  }
  WTD_ASSIGN_OR_RETURN(std::string name, StringArg(args, "name"));
  if (action == "remove") {
    WTD_ASSIGN_OR_RETURN(std::vector<SlotAction> done, slots->Remove(name));
    return json{{"removed", name}, {"actions", ActionsJson(done)}};
  }
  if (action == "create") {
    WTD_RETURN_IF_ERROR(CheckSlotName(name));
    WTD_ASSIGN_OR_RETURN(std::string repo, RepoOf(c, args));
    WTD_ASSIGN_OR_RETURN(std::string base, StringArg(args, "base"));
    WTD_ASSIGN_OR_RETURN(std::string sha, ResolveCommit(repo, base.empty() ? "HEAD" : base));
    WTD_ASSIGN_OR_RETURN(Slot s, slots->CreateManual(name, repo, sha));
    return json{{"worktree", SlotJson(s)}};
  }
  return Status::InvalidArgument("args.action: unknown worktree action " + action);
}

std::string Print(const json& result) {
  if (result.contains("worktrees")) {
    if (result["worktrees"].empty()) return "no worktrees\n";
    std::vector<std::vector<std::string>> rows = {{"NAME", "STATE", "RUN", "SHA", "PATH"}};
    for (const json& w : result["worktrees"]) {
      std::string sha = w["sha"].is_string() ? w["sha"].get<std::string>().substr(0, 12) : "-";
      rows.push_back({Cell(w["name"]), Cell(w["state"]), Cell(w["run_id"]), sha, Cell(w["path"])});
    }
    return FormatTable(rows);
  }
  if (result.contains("worktree")) {
    const json& w = result["worktree"];
    return "worktree " + Cell(w["name"]) + " at " + Cell(w["path"]) + " (" + Cell(w["sha"]) + ")\n";
  }
  std::string out = "removed worktree " + Cell(result["removed"]) + "\n";
  for (const json& a : result["actions"])
    out += "  " + Cell(a["kind"]) + ": " + Cell(a["detail"]) + "\n";
  return out;
}

}  // namespace

WorktreeSlots* SlotsOf(const CommandContext& c, std::unique_ptr<SlotsOnStore>* own) {
  if (c.slots != nullptr) return c.slots;
  SlotOptions o;
  o.root = JoinPath(c.state_dir, "worktrees");
  ProcessTable* processes = c.processes != nullptr ? c.processes : SystemProcessTable();
  *own = std::make_unique<SlotsOnStore>(c.runs->store(), c.runs->clock(), processes, o);
  return &(*own)->slots;
}

const CommandDef& WorktreeCommand() {
  static const CommandDef kDef = {
      .name = "worktree",
      .usage = "worktree [list | create NAME [--repo R] [--base REF] | remove NAME]",
      .summary = "the daemon-owned worktrees: list them, make one by hand, remove one",
      .flags = {{"repo", true}, {"base", true}},
      .access = Access::kStoreWrite,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .writes = Writes,
  };
  return kDef;
}

}  // namespace wtd
