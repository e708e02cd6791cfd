// Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/):
// real encoded records of every kind, their bare payloads, truncated and
// bit-flipped variants, an empty input, and run/cursor key parts. Built on
// demand only (target write_seeds); see fuzz/README.md.
//   usage: write_seeds CORPUS_DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "store/keys.h"
#include "store/records.h"

namespace wtd {
namespace {

namespace fs = std::filesystem;

const char kSha[] = "0123456789abcdef0123456789abcdef01234567";

bool WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

std::vector<std::pair<std::string, std::string>> Records() {
  Run pending;
  pending.id = 7;
  pending.key = RunKey{"/home/dev/repo", "main", "build", kSha};
  pending.branch = "main";
  pending.worktree_path = "/home/dev/repo";
  pending.max_attempts = 3;
  pending.retry_backoff_ms = 1000;
  pending.created_at_ms = pending.updated_at_ms = 1700000000000;
  Run running = pending;
  running.state = RunState::kRunning;
  running.attempt = 1;
  running.pid = 4242;
  running.pid_start_time = 123456;
  running.boot_id = "8f1c2a3b-0000-4000-8000-123456789abc";
  running.incarnation = 3;
  running.log_path = "/var/lib/wtd/logs/7/1.log";
  Run done = running;
  done.state = RunState::kFailed;
  done.exit_code = 2;
  done.duration_ms = 5120;
  done.error = "exit status 2";
  done.log_bytes = 1 << 20;
  done.log_truncated = true;
  Cursor cursor;
  cursor.sha = kSha;
  cursor.commit_time_s = 1700000000;
  cursor.updated_at_ms = 1700000000123;
  Lease lease;
  lease.host = "host-a";
  lease.boot_id = "8f1c2a3b-boot";
  lease.pid = 4242;
  lease.pid_start_time = 123456;
  lease.incarnation = 3;
  lease.acquired_at_ms = 1700000000000;
  lease.expires_at_ms = 1700000030000;
  lease.fencing_token = 17;
  lease.run_id = 7;
  IdemRecord idem{"create_worktree",
                  "{\"path\":\"/w\"}",
                  IdemStatus::kCompleted,
                  2,
                  1700000005000,
                  "ok",
                  "{\"remove\":\"/w\"}",
                  "",
                  1700000000000,
                  1700000005000,
                  IdemOwner{"host-a", "8f1c2a3b-boot", 4242, 123456, 3}};
  Event event{7, RunState::kRunning, RunState::kFailed, 1, 1700000005120};
  Slot slot{"wtd-0123abcd-1",
            "/r",
            "/state/worktrees/wtd-0123abcd-1",
            kSha,
            SlotState::kBusy,
            7,
            std::string(64, 'a'),
            "wtd/slots/wtd-0123abcd-1",
            1700000000000,
            1700000005000};
  RunStats stats;
  stats.repo = "/r";
  stats.worktree = "main";
  stats.job = "job";
  stats.hour_ms = 1699999200000;
  stats.succeeded = 2;
  stats.failed = 1;
  stats.attempts = 3;
  stats.timed = 3;
  stats.duration_sum_ms = 5120;
  stats.histogram.assign(kRunStatsBuckets, 0);
  stats.histogram[9] = 2;
  stats.histogram[11] = 1;
  stats.slowest = {{7, 5000, RunState::kFailed, 1700000005120}};
  stats.failures = {{7, 5000, RunState::kFailed, 1700000005120}};
  return {{"run_pending", EncodeRun(pending)}, {"run_running", EncodeRun(running)},
          {"run_failed", EncodeRun(done)},     {"cursor", EncodeCursor(cursor)},
          {"lease", EncodeLease(lease)},       {"idem", EncodeIdem(idem)},
          {"event", EncodeEvent(event)},       {"slot", EncodeSlot(slot)},
          {"run_stats", EncodeRunStats(stats)}};
}

bool WriteRecordSeeds(const fs::path& dir) {
  bool ok = WriteFile(dir / "empty", "");
  ok = ok && WriteFile(dir / "run_key", EncodeRunKey(RunKey{"/r", "main", "job", kSha}));
  ok = ok && WriteFile(dir / "u64_key", EncodeU64Key(7));
  for (const auto& [name, value] : Records()) {
    std::string payload = value.substr(kRecordHeaderSize);
    std::string flipped = value;
    flipped[value.size() / 2] = static_cast<char>(flipped[value.size() / 2] ^ 0x10);
    ok = ok && WriteFile(dir / name, value);
    ok = ok && WriteFile(dir / (name + ".payload"), payload);
    ok = ok && WriteFile(dir / (name + ".truncated"), value.substr(0, value.size() - 3));
    ok = ok && WriteFile(dir / (name + ".flipped"), flipped);
  }
  return ok;
}

bool WriteRunKeySeeds(const fs::path& dir) {
  std::string sha(kSha);
  return WriteFile(dir / "empty", "") &&
         WriteFile(dir / "plain", "/home/dev/repo\nmain\nbuild\n" + sha) &&
         WriteFile(dir / "linked", "/srv/r\nfeature-x\ntest\n" + sha) &&
         WriteFile(dir / "empty_part", "/r\n\njob\n" + sha) &&
         WriteFile(dir / std::string("nul_part"), std::string("/r\nma\0in\njob\n", 13) + sha) &&
         WriteFile(dir / "three_parts", "/r\nmain\nrelease/1.0");
}

}  // namespace
}  // namespace wtd

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  std::filesystem::path root(argv[1]);
  std::error_code ec;
  std::filesystem::create_directories(root / "records", ec);
  std::filesystem::create_directories(root / "run_key", ec);
  if (ec || !wtd::WriteRecordSeeds(root / "records") || !wtd::WriteRunKeySeeds(root / "run_key")) {
    fprintf(stderr, "%s: cannot write seeds under '%s'\n", argv[0], argv[1]);
    return 1;
  }
  return 0;
}
