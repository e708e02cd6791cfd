#include "daemon/metrics.h"

#include <spdlog/spdlog.h>

namespace wtd {

DaemonMetrics::DaemonMetrics() {
  metrics::Registry& r = registry_;
  r.AddGauge("wtd_up", "1 while the daemon serves metrics")->With({})->Set(1);
  r.AddGauge("wtd_build_info", "the daemon's version, as a label; always 1", {"version"})
      ->With({WTD_VERSION})
      ->Set(1);
  runs_total_ = r.AddCounter(
      "wtd_runs_total", "runs that reached a terminal state, by job and state", {"job", "state"});
  run_duration_ =
      r.AddHistogram("wtd_run_duration_seconds",
                     "how long the last attempt of a run that ended after running took, by job",
                     metrics::RunDurationBuckets(), {"job"});
  queue_depth_ = r.AddGauge("wtd_queue_depth",
                            "active runs at the loop's last step: queued (waiting for a slot), "
                            "retry_wait (waiting for their retry delay), running",
                            {"state"});
  queued_ = queue_depth_->With({"queued"});
  retry_wait_ = queue_depth_->With({"retry_wait"});
  running_ = queue_depth_->With({"running"});
  tick_ = r.AddHistogram("wtd_poll_tick_seconds", "how long one poll of the repositories took",
                         metrics::LatencyBuckets())
              ->With({});
  commits_seen_ = r.AddCounter("wtd_commits_seen_total", "new commits the poller found")->With({});
  store_write_ = r.AddHistogram("wtd_store_write_seconds",
                                "how long one synced batch of the state store took to commit",
                                metrics::LatencyBuckets())
                     ->With({});
  recovery_ = r.AddCounter("wtd_recovery_actions_total",
                           "actions of the start-up recovery, by kind", {"kind"});
  contention_ =
      r.AddCounter("wtd_lock_contention_total", "times a run found its lock held by another owner")
          ->With({});
  locks_held_ =
      r.AddGauge("wtd_locks_held", "lock leases held (lease rows in state held)")->With({});
}

std::function<void(int64_t)> DaemonMetrics::StoreObserver() {
  metrics::Histogram* h = store_write_;
  return [h](int64_t micros) { h->Observe(static_cast<double>(micros) / 1e6); };
}

RunStoreObserver DaemonMetrics::RunObserver() {
  RunStoreObserver o;
  metrics::CounterFamily* total = runs_total_;
  metrics::HistogramFamily* duration = run_duration_;
  o.transition = [total, duration](RunState from, const Run& after) {
    if (!IsTerminal(after.state)) return;
    total->With({after.key.job, RunStateName(after.state)})->Inc();
    // The attempt's own time, for runs whose end came from a process.
    if (from == RunState::kRunning || from == RunState::kFinishing) {
      duration->With({after.key.job})->Observe(static_cast<double>(after.duration_ms) / 1000.0);
    }
  };
  metrics::Counter* contention = contention_;
  o.lock_contended = [contention](const Run&) { contention->Inc(); };
  return o;
}

std::function<void(const PollStats&, int64_t)> DaemonMetrics::TickHook() {
  metrics::Histogram* tick = tick_;
  metrics::Counter* seen = commits_seen_;
  return [tick, seen](const PollStats& stats, int64_t micros) {
    tick->Observe(static_cast<double>(micros) / 1e6);
    if (stats.commits_seen > 0) seen->Inc(stats.commits_seen);
  };
}

void DaemonMetrics::OnHeartbeat(const LoopHeartbeat& beat) {
  queued_->Set(static_cast<int64_t>(beat.queued));
  retry_wait_->Set(static_cast<int64_t>(beat.retry_wait));
  running_->Set(static_cast<int64_t>(beat.running));
}

void DaemonMetrics::CountRecovery(const std::string& kind, uint64_t n) {
  recovery_->With({kind})->Inc(n);
}

void DaemonMetrics::WatchLeases(RunStore* runs) {
  metrics::Gauge* held = locks_held_;
  registry_.AddCollectHook([runs, held] {
    Result<std::vector<Lease>> rows = runs->ListLeases();
    if (!rows.ok()) {
      spdlog::warn("metrics: cannot count the lock leases: {}", rows.status().ToString());
      return;  // the last count stays
    }
    int64_t n = 0;
    for (const Lease& row : *rows) n += row.state == LeaseState::kHeld ? 1 : 0;
    held->Set(n);
  });
}

}  // namespace wtd
