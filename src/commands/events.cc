// `events [--last N | --after SEQ] [--follow]`: the run transitions from the
// events family, oldest first, one line each; with --follow, then those
// that come, until interrupted. wtctl pulls them page by page with the
// sequence number of the last one it printed, so a slow reader costs the
// daemon nothing; one so slow that the daemon trimmed events before it read
// them is told how many it missed.
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include "base/time_format.h"
#include "commands/defs.h"
#include "report/table.h"

namespace wtd {
namespace {

constexpr int64_t kDefaultLast = 20;
constexpr int64_t kPage = 1000;

Result<json> Request(const CliArgs& a) {
  if (!a.positional.empty()) return Status::InvalidArgument("events takes no arguments");
  if (a.Has("last") && a.Has("after")) {
    return Status::InvalidArgument("--last and --after exclude each other");
  }
  json args = {{"follow", a.Has("follow")}};
  if (a.Has("after")) {
    WTD_ASSIGN_OR_RETURN(int64_t after, ParseCount("after", a.flags.at("after"), 0));
    args["after"] = after;
  } else {
    int64_t last = kDefaultLast;
    if (a.Has("last")) {
      WTD_ASSIGN_OR_RETURN(last, ParseCount("last", a.flags.at("last"), 0));
    }
    args["last"] = last;
  }
  return args;
}

// {events: [{seq, run_id, repo, worktree, job, sha, from, to, attempt, at}],
//  last_seq}: up to `limit` events after `after` (or the newest `last`).
Result<json> Handle(const CommandContext& c, const json& args) {
  WTD_ASSIGN_OR_RETURN(int64_t limit, IntArg(args, "limit", kPage, 1));
  WTD_ASSIGN_OR_RETURN(uint64_t newest, c.runs->LastEventSeq());
  uint64_t after = 0;
  if (args.contains("after") && !args["after"].is_null()) {
    WTD_ASSIGN_OR_RETURN(int64_t a, IntArg(args, "after", 0, 0));
    after = static_cast<uint64_t>(a);
  } else {
    WTD_ASSIGN_OR_RETURN(int64_t last, IntArg(args, "last", kDefaultLast, 0));
    after = newest > static_cast<uint64_t>(last) ? newest - static_cast<uint64_t>(last) : 0;
  }
  WTD_ASSIGN_OR_RETURN(std::vector<EventEntry> entries,
                       c.runs->ListEvents(after, static_cast<size_t>(limit)));
  std::map<uint64_t, std::optional<Run>> runs;
  json events = json::array();
  for (const EventEntry& e : entries) {
    auto [it, fresh] = runs.try_emplace(e.event.run_id);
    if (fresh) {
      Result<Run> r = c.runs->Get(e.event.run_id);
      if (r.ok()) it->second = std::move(*r);
    }
    const std::optional<Run>& run = it->second;
    auto field = [&](const std::string& v) { return run ? json(v) : json(nullptr); };
    events.push_back({{"seq", e.seq},
                      {"run_id", e.event.run_id},
                      {"repo", field(run ? run->key.repo : "")},
                      {"worktree", field(run ? run->key.worktree : "")},
                      {"job", field(run ? run->key.job : "")},
                      {"sha", field(run ? run->key.sha : "")},
                      {"from", std::string(RunStateName(e.event.from))},
                      {"to", std::string(RunStateName(e.event.to))},
                      {"attempt", e.event.attempt},
                      {"at", FormatRfc3339(e.event.at_ms)}});
  }
  uint64_t last_seq = entries.empty() ? after : entries.back().seq;
  return json{{"events", events}, {"last_seq", last_seq}, {"newest_seq", newest}};
}

std::string Line(const json& e) {
  // The first event of a run is its enqueue: pending -> pending.
  std::string change = e["from"] == "pending" && e["to"] == "pending"
                           ? "queued"
                           : Cell(e["from"]) + " -> " + Cell(e["to"]);
  return Cell(e["at"]) + "  run " + Cell(e["run_id"]) + "  " + Cell(e["job"]) + " in " +
         Cell(e["worktree"]) + " on " + Cell(e["sha"]).substr(0, 12) + "  " + change +
         " (attempt " + Cell(e["attempt"]) + ")\n";
}

std::string Print(const json& result) {
  std::string out;
  for (const json& e : result["events"]) out += Line(e);
  return out;
}

// Prints one page; returns the sequence number to continue after.
uint64_t Emit(Session& session, const json& page, uint64_t after) {
  for (const json& e : page["events"]) {
    uint64_t seq = e["seq"].get<uint64_t>();
    if (after > 0 && seq > after + 1) {
      std::cerr << "wtctl: " << (seq - after - 1)
                << " event(s) were trimmed by the daemon before they were read\n";
    }
    after = seq;
    if (session.JsonOutput()) {
      std::cout << e.dump(-1, ' ', false, json::error_handler_t::replace) << "\n";
    } else {
      std::cout << Line(e);
    }
  }
  std::cout.flush();
  return page["last_seq"].get<uint64_t>();
}

int RunCli(Session& session, const json& request) {
  json args = request;
  args.erase("follow");
  bool follow = request.value("follow", false);
  uint64_t after = 0;
  for (;;) {
    Result<json> page = session.Call("events", args);
    if (!page.ok()) return session.Fail(page.status().ToString(), kExitError);
    bool full = (*page)["events"].size() >= static_cast<size_t>(kPage);
    uint64_t next = Emit(session, *page, args.contains("after") ? after : 0);
    after = next;
    args = {{"after", after}};
    if (full) continue;  // more are there already
    if (!follow) return kExitOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

const CommandDef& EventsCommand() {
  static const CommandDef kDef = {
      .name = "events",
      .usage = "events [--last N | --after SEQ] [--follow]",
      .summary = "run transitions, oldest first (the newest 20 by default); --follow for more",
      .flags = {{"last", true}, {"after", true}, {"follow", false}},
      .access = Access::kReadOnly,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .run = RunCli,
  };
  return kDef;
}

}  // namespace wtd
