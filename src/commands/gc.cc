// `gc [--dry-run] [--retention-days D]`: one whole collection of history by
// hand (src/retention, docs/design/store.md "Retention"): terminal runs
// finished before now - retention with their log and context files, orphan
// files, and old reap records whose reap is done; printed (with --dry-run:
// what would go, nothing removed).
//
// With the daemon up, the daemon collects with its own --retention-days,
// batch by batch on its loop thread, where its own retention runs, so the
// two never race (--retention-days given to wtctl is then ignored, and said
// so). With it down, wtctl collects on the store under the PID-file lock,
// with --retention-days or the default 30; --dry-run opens the store
// read-only.
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <memory>

#include "base/time_format.h"
#include "commands/defs.h"
#include "commands/slots_of.h"
#include "worktrees/slots.h"

namespace wtd {
namespace {

constexpr double kMaxRetentionDays = 36'500;

Result<double> ParseDays(const std::string& text) {
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno != 0 || !(d >= 0) || d > kMaxRetentionDays) {
    return Status::InvalidArgument("--retention-days=" + text +
                                   ": expected a number of days from 0 to 36500");
  }
  return d;
}

Result<json> Request(const CliArgs& a) {
  if (!a.positional.empty()) return Status::InvalidArgument("gc takes no arguments");
  json args = {{"dry_run", a.Has("dry-run")}};
  if (a.Has("retention-days")) {
    WTD_ASSIGN_OR_RETURN(double days, ParseDays(a.flags.at("retention-days")));
    args["retention_days"] = days;
  }
  return args;
}

bool Writes(const json& args) { return !args.value("dry_run", false); }

// On the store no daemon holds: the whole pass, here.
Result<GcResult> CollectOnStore(const CommandContext& c, const json& args, bool dry_run) {
  GcResult out;
  out.retention_days = kDefaultRetentionDays;
  out.retention_from = "default";
  if (args.contains("retention_days") && !args["retention_days"].is_null()) {
    const json& v = args["retention_days"];
    if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > kMaxRetentionDays) {
      return Status::InvalidArgument(
          "args.retention_days: expected a number from 0 to 36500, got " + v.dump());
    }
    out.retention_days = v.get<double>();
    out.retention_from = "--retention-days";
  }
  int64_t retention_ms = RetentionMs(out.retention_days);
  if (retention_ms <= 0) {
    out.report.caught_up = true;
    return out;
  }
  std::unique_ptr<SlotsOnStore> own;
  CollectorHooks hooks;
  hooks.pinned_runs = RunsNamedBySlots(SlotsOf(c, &own));
  Collector collector(c.runs, c.state_dir, c.runs->clock(), hooks);
  out.cutoff_ms = c.runs->clock()->NowMs() - retention_ms;
  WTD_RETURN_IF_ERROR(collector.CollectAll(out.cutoff_ms, dry_run, &out.report));
  return out;
}

Result<json> Handle(const CommandContext& c, const json& args) {
  bool dry_run = args.value("dry_run", false);
  GcResult r;
  std::string note;
  if (c.daemon != nullptr) {
    WTD_ASSIGN_OR_RETURN(r, c.daemon->CollectHistory(dry_run));
    if (args.contains("retention_days") && !args["retention_days"].is_null()) {
      note = "--retention-days ignored: the running daemon's applies";
    }
  } else {
    WTD_ASSIGN_OR_RETURN(r, CollectOnStore(c, args, dry_run));
  }
  const CollectReport& rep = r.report;
  json errors = json::array();
  for (const std::string& e : rep.errors) errors.push_back(e);
  return json{{"dry_run", dry_run},
              {"retention_days", r.retention_days},
              {"retention_from", r.retention_from},
              {"cutoff", r.cutoff_ms > 0 ? json(FormatRfc3339(r.cutoff_ms)) : json(nullptr)},
              {"runs", rep.runs.size()},
              {"run_ids", rep.runs},
              {"log_files", rep.log_files},
              {"context_files", rep.context_files},
              {"orphan_files", rep.orphan_files},
              {"reap_records", rep.reap_records},
              {"bytes_freed", rep.bytes_freed},
              {"runs_kept", rep.runs_kept},
              {"caught_up", rep.caught_up},
              {"errors", errors},
              {"note", note.empty() ? json(nullptr) : json(note)}};
}

// "1-3, 7, 9-10"
std::string Ranges(const json& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size();) {
    uint64_t first = ids[i].get<uint64_t>(), last = first;
    size_t j = i + 1;
    while (j < ids.size() && ids[j].get<uint64_t>() == last + 1) last = ids[j++].get<uint64_t>();
    if (!out.empty()) out += ", ";
    out += std::to_string(first) + (last != first ? "-" + std::to_string(last) : "");
    i = j;
  }
  return out;
}

std::string Print(const json& r) {
  bool dry = r.value("dry_run", false);
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, r["retention_days"].get<double>());
  std::string days = ec == std::errc() ? std::string(buf, end) : r["retention_days"].dump();
  std::string from = r.value("retention_from", "");
  std::string source = from == "daemon"    ? "the daemon's --retention-days"
                       : from == "default" ? "the default; wtctl --retention-days D sets it"
                                           : "wtctl --retention-days";
  std::string out;
  if (r["note"].is_string()) out += r["note"].get<std::string>() + "\n";
  if (r["cutoff"].is_null()) {
    return out + "retention is forever (" + source + " is 0): nothing collected\n";
  }
  out += "retention " + days + " day(s) (" + source + "): what finished before " +
         r["cutoff"].get<std::string>() + "\n";
  out += std::string(dry ? "would remove " : "removed ") +
         std::to_string(r["runs"].get<uint64_t>()) + " run(s)";
  if (!r["run_ids"].empty()) out += " (" + Ranges(r["run_ids"]) + ")";
  out += ", " + std::to_string(r["log_files"].get<uint64_t>()) + " log file(s), " +
         std::to_string(r["context_files"].get<uint64_t>()) + " context file(s) (" +
         std::to_string(r["orphan_files"].get<uint64_t>()) + " of them orphans), " +
         std::to_string(r["reap_records"].get<uint64_t>()) + " reap record(s); " +
         std::to_string(r["bytes_freed"].get<uint64_t>()) + " bytes " +
         (dry ? "to free" : "freed") + "\n";
  if (uint64_t kept = r["runs_kept"].get<uint64_t>(); kept > 0) {
    out += std::to_string(kept) +
           " older run(s) kept: not finished, finished after the cutoff, or still named by a "
           "worktree slot or a lock lease\n";
  }
  if (!r.value("caught_up", true)) out += "more remains: run wtctl gc again\n";
  for (const json& e : r["errors"]) out += "error: " + e.get<std::string>() + "\n";
  return out;
}

}  // namespace

const CommandDef& GcCommand() {
  static const CommandDef kDef = {
      .name = "gc",
      .usage = "gc [--dry-run] [--retention-days D]",
      .summary = "remove runs, logs and reap records older than the retention now",
      .flags = {{"dry-run", false}, {"retention-days", true}},
      .access = Access::kStoreWrite,
      .request = Request,
      .handle = Handle,
      .print = Print,
      .writes = Writes,
  };
  return kDef;
}

}  // namespace wtd
