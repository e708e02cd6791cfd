// FakeLauncher: a Launcher that starts no process. Each Start hands out a
// FakeLaunched the test ends when it likes (Finish), so the scheduler's loop
// is driven without git, processes or sleeping.
#ifndef WTD_TESTS_FAKES_FAKE_LAUNCHER_H_
#define WTD_TESTS_FAKES_FAKE_LAUNCHER_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "exec/launcher.h"

namespace wtd {

class FakeLaunched final : public Launched {
 public:
  // What Terminate does: end as stopped (the usual), end on its own with
  // exit 0 (it finished just before the signal), or nothing.
  enum class OnTerminate { kStopped, kExitsFirst, kIgnore };

  FakeLaunched(SpawnRequest req, int32_t pid) : req_(std::move(req)) {
    identity_.pid = pid;
    identity_.start_time = 1000 + static_cast<uint64_t>(pid);
    identity_.boot_id = "fake-boot";
  }
  const ProcessIdentity& identity() const override { return identity_; }
  Status Release(int64_t timeout_ms, int64_t) override {
    released = true;
    timeout = timeout_ms;
    return release_error;
  }
  void Abort() override { aborted = true; }
  void Watch() override { watched = true; }
  void Detach() override { detached = true; }
  void Terminate() override {
    terminated = true;
    if (terminations != nullptr) ++*terminations;
    if (on_terminate == OnTerminate::kIgnore) return;
    AttemptOutcome o;
    if (on_terminate == OnTerminate::kStopped) {
      o.term_signal = 15;
      o.stopped = true;
    } else {
      o.exit_code = 0;
    }
    Finish(o);
  }
  std::optional<AttemptOutcome> Wait(int64_t) override {
    std::lock_guard<std::mutex> l(mu_);
    return outcome_;
  }
  void OnDone(std::function<void(const AttemptOutcome&)> fn) override { on_done_ = std::move(fn); }

  // Ends the job with `o` (once).
  void Finish(const AttemptOutcome& o) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (outcome_) return;
      outcome_ = o;
    }
    if (on_done_) on_done_(o);
  }
  void Exit(int32_t code) {
    AttemptOutcome o;
    o.exit_code = code;
    Finish(o);
  }
  bool done() {
    std::lock_guard<std::mutex> l(mu_);
    return outcome_.has_value();
  }
  const SpawnRequest& request() const { return req_; }
  void set_identity(const ProcessIdentity& id) { identity_ = id; }

  bool released = false, aborted = false, terminated = false, watched = false, detached = false;
  int64_t timeout = 0;
  Status release_error;
  OnTerminate on_terminate = OnTerminate::kStopped;
  int* terminations = nullptr;  // counted here too: outlives the job

 private:
  SpawnRequest req_;
  ProcessIdentity identity_;
  std::mutex mu_;
  std::optional<AttemptOutcome> outcome_;
  std::function<void(const AttemptOutcome&)> on_done_;
};

class FakeLauncher final : public Launcher {
 public:
  Result<std::unique_ptr<Launched>> Start(const SpawnRequest& req) override {
    if (!fail_next.ok()) {
      Status st = fail_next;
      fail_next = Status::OK();
      return st;
    }
    auto job = std::make_unique<FakeLaunched>(req, next_pid_++);
    job->on_terminate = on_terminate;
    job->terminations = &terminations;
    started.push_back(job.get());
    return std::unique_ptr<Launched>(std::move(job));
  }

  // Adopts any supervisor whose pid is not in `gone`.
  Result<std::unique_ptr<Launched>> Adopt(const AdoptRequest& req) override {
    if (gone.count(req.supervisor.pid)) {
      return Status::NotFound("supervisor " + std::to_string(req.supervisor.pid) + " is gone");
    }
    SpawnRequest r;
    r.run_id = req.run_id;
    r.attempt = req.attempt;
    auto job = std::make_unique<FakeLaunched>(r, req.supervisor.pid);
    job->set_identity(req.supervisor);
    job->on_terminate = on_terminate;
    job->terminations = &terminations;
    adopted.push_back(job.get());
    return std::unique_ptr<Launched>(std::move(job));
  }

  // Every job started, in order. Owned by the scheduler: valid only while
  // the job is in flight (a reaped job is destroyed).
  std::vector<FakeLaunched*> started;
  std::vector<FakeLaunched*> adopted;  // likewise, every job adopted
  std::set<int32_t> gone;              // supervisors Adopt does not find
  int terminations = 0;                // Terminate calls over every job
  Status fail_next;                    // the next Start fails with it
  FakeLaunched::OnTerminate on_terminate = FakeLaunched::OnTerminate::kStopped;

 private:
  int32_t next_pid_ = 100;
};

}  // namespace wtd

#endif  // WTD_TESTS_FAKES_FAKE_LAUNCHER_H_
