// The daemon's metrics (docs/design/metrics.md): the families it exports,
// and the hooks that feed them from the store, the run state machine, the
// loop and recovery. Made only with --metrics-listen; without it no hook is
// set and every module behaves as without metrics.
//
// Thread-safety: every hook may run on any thread (they touch atomics and
// the registry's per-family mutexes only); the collect hook reads the lease
// rows through RunStore, which is thread-safe.
#ifndef WTD_DAEMON_METRICS_H_
#define WTD_DAEMON_METRICS_H_

#include <cstdint>
#include <functional>
#include <string>

#include "metrics/registry.h"
#include "recovery/recovery.h"
#include "runs/run_store.h"
#include "scheduler/scheduler.h"

namespace wtd {

class DaemonMetrics {
 public:
  // Registers every family; wtd_up and wtd_build_info are 1 from here on.
  DaemonMetrics();

  metrics::Registry* registry() { return &registry_; }

  // StateStore::SetCommitObserver: wtd_store_write_seconds.
  std::function<void(int64_t micros)> StoreObserver();
  // RunStore::SetObserver: wtd_runs_total, wtd_run_duration_seconds,
  // wtd_lock_contention_total.
  RunStoreObserver RunObserver();
  // Scheduler::SetTickHook: wtd_poll_tick_seconds, wtd_commits_seen_total.
  std::function<void(const PollStats&, int64_t micros)> TickHook();
  // From the step hook: wtd_queue_depth.
  void OnHeartbeat(const LoopHeartbeat& beat);
  // wtd_recovery_actions_total{kind}, `n` more actions of `kind`.
  void CountRecovery(const std::string& kind, uint64_t n = 1);
  // wtd_locks_held: the held lease rows of `runs`, counted at each scrape.
  void WatchLeases(RunStore* runs);

 private:
  metrics::Registry registry_;
  metrics::CounterFamily* runs_total_;
  metrics::HistogramFamily* run_duration_;
  metrics::GaugeFamily* queue_depth_;
  metrics::Gauge* queued_;
  metrics::Gauge* retry_wait_;
  metrics::Gauge* running_;
  metrics::Histogram* tick_;
  metrics::Counter* commits_seen_;
  metrics::Histogram* store_write_;
  metrics::CounterFamily* recovery_;
  metrics::Counter* contention_;
  metrics::Gauge* locks_held_;
};

}  // namespace wtd

#endif  // WTD_DAEMON_METRICS_H_
