#include "daemon/control.h"

#include <unistd.h>

#include <chrono>
#include <future>
#include <memory>

namespace wtd {
namespace {

// How long a control handler waits for the loop thread's answer: a step in
// progress, then (cancel) a job's SIGTERM and kill grace. Below wtctl's own
// call timeout.
constexpr auto kLoopAnswerTimeout = std::chrono::seconds(25);

// Starts work that answers on the loop thread (`start` posts it there, and
// the loop is woken) and waits for the value it hands to its callback.
template <typename T>
Result<T> OnLoop(const std::string& what,
                 const std::function<void(std::function<void(Result<T>)>)>& start) {
  auto answer = std::make_shared<std::promise<Result<T>>>();
  std::future<Result<T>> got = answer->get_future();
  auto once = std::make_shared<std::once_flag>();
  start([answer, once](Result<T> r) {
    std::call_once(*once, [&] { answer->set_value(std::move(r)); });
  });
  if (got.wait_for(kLoopAnswerTimeout) != std::future_status::ready) {
    return Status::Aborted(what + ": the daemon's loop did not answer within " +
                           std::to_string(kLoopAnswerTimeout.count()) +
                           " s (stopping, or a long step); see `wtctl status`");
  }
  return got.get();
}

class Control : public DaemonControl {
 public:
  explicit Control(ControlContext* c) : c_(c) {}

  Info Status() override {
    Info info;
    info.pid = getpid();
    info.version = WTD_VERSION;
    info.started_at_ms = c_->started_at_ms;
    info.incarnation = c_->incarnation;
    info.socket_path = c_->socket_path;
    info.metrics_listen = c_->metrics_listen;
    info.store_commits = c_->runs->store()->commits();
    info.store_bytes = c_->runs->store()->DiskBytes();
    info.recovery = c_->recovery;
    info.scheduler = c_->scheduler->Snapshot();
    return info;
  }
  void RequestStop() override { c_->scheduler->RequestStop(); }
  Result<uint64_t> RequestRestart() override {
    uint64_t jobs = c_->scheduler->Snapshot().running.size();
    c_->scheduler->RequestRestart();
    return jobs;
  }
  void SetPaused(bool paused) override { c_->scheduler->SetPaused(paused); }
  Result<ReloadResult> Reload() override { return c_->reload(); }
  Result<TriggeredRun> Trigger(const TriggerArgs& a) override {
    Poller* poller = c_->poller;
    if (poller == nullptr) return Status::NotSupported("this daemon has no poller");
    Scheduler* scheduler = c_->scheduler;
    return OnLoop<TriggeredRun>(
        "trigger " + a.job, [scheduler, poller, a](std::function<void(Result<TriggeredRun>)> done) {
          scheduler->Post([poller, a, done = std::move(done)] {
            done(poller->Trigger(a.repo, a.worktree, a.job, a.rev, a.again));
          });
        });
  }
  Result<Run> Cancel(uint64_t id, const std::string& reason) override {
    Scheduler* scheduler = c_->scheduler;
    return OnLoop<Run>("cancel run " + std::to_string(id),
                       [scheduler, id, reason](std::function<void(Result<Run>)> done) {
                         scheduler->Cancel(id, reason, std::move(done));
                       });
  }
  Result<GcResult> CollectHistory(bool dry_run) override { return c_->collect(dry_run); }

 private:
  ControlContext* c_;
};

}  // namespace

std::vector<CommandSpec> ControlCommands(ControlContext* ctx) {
  auto control = std::make_shared<Control>(ctx);
  auto context = std::make_shared<CommandContext>();
  context->runs = ctx->runs;
  context->state_dir = ctx->state_dir;
  context->daemon = control.get();
  context->locks = ctx->locks;
  context->slots = ctx->slots;
  context->jobs_root = ctx->jobs_root;
  std::vector<CommandSpec> table;
  for (const CommandDef& def : AllCommands()) {
    if (def.handle == nullptr) continue;  // wtctl-only
    auto handle = def.handle;
    table.push_back(
        {std::string(def.name), std::string(def.summary),
         [context, control, handle](const json& args) { return handle(*context, args); }});
  }
  return table;
}

}  // namespace wtd
