// Record encoding: round trips, older class versions, and damaged input
// (every truncation, a flip of every byte) that must decode to Corruption.
#include "store/records.h"

#include <gtest/gtest.h>

#include <cereal/archives/portable_binary.hpp>
#include <cereal/types/string.hpp>
#include <sstream>

namespace wtd {
namespace {

// The field list of a Run at class version 1 (before log_bytes and
// log_truncated), written as the code of that version wrote it.
struct RunV1 {
  Run r;
  uint8_t state = 0;  // raw, so that a test can store an invalid state

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    ar(r.id, r.key.repo, r.key.worktree, r.key.job, r.key.sha, r.branch, r.worktree_path, state,
       r.attempt, r.max_attempts, r.retry_backoff_ms, r.timeout_ms, r.created_at_ms,
       r.updated_at_ms, r.started_at_ms, r.finished_at_ms, r.not_before_ms, r.pid, r.pid_start_time,
       r.boot_id, r.incarnation, r.exit_code, r.term_signal, r.duration_ms, r.log_path, r.error);
  }
};

// A Run at class version 2 (before the job it executes).
struct RunV2 {
  RunV1 v1;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    Run& r = v1.r;
    ar(r.id, r.key.repo, r.key.worktree, r.key.job, r.key.sha, r.branch, r.worktree_path, v1.state,
       r.attempt, r.max_attempts, r.retry_backoff_ms, r.timeout_ms, r.created_at_ms,
       r.updated_at_ms, r.started_at_ms, r.finished_at_ms, r.not_before_ms, r.pid, r.pid_start_time,
       r.boot_id, r.incarnation, r.exit_code, r.term_signal, r.duration_ms, r.log_path, r.error,
       r.log_bytes);
    uint8_t b = r.log_truncated ? 1 : 0;
    ar(b);
  }
};

// A Run at class version 3 (before lock_waits, lease_token, finish_state).
struct RunV3 {
  RunV2 v2;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    Run& r = v2.v1.r;
    ar(r.id, r.key.repo, r.key.worktree, r.key.job, r.key.sha, r.branch, r.worktree_path,
       v2.v1.state, r.attempt, r.max_attempts, r.retry_backoff_ms, r.timeout_ms, r.created_at_ms,
       r.updated_at_ms, r.started_at_ms, r.finished_at_ms, r.not_before_ms, r.pid, r.pid_start_time,
       r.boot_id, r.incarnation, r.exit_code, r.term_signal, r.duration_ms, r.log_path, r.error,
       r.log_bytes);
    uint8_t b = r.log_truncated ? 1 : 0;
    ar(b, r.command, uint64_t{r.env.size()});
    for (auto& [name, value] : r.env) ar(name, value);
    ar(r.commit_subject, r.commit_author, r.commit_time_s);
  }
};

// A Run at class version 4 (before isolation, keep_worktree and slot).
struct RunV4 {
  RunV3 v3;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t version) {
    v3.serialize(ar, version);
    const Run& r = v3.v2.v1.r;
    ar(r.lock_waits, r.lease_token, static_cast<uint8_t>(r.finish_state));
  }
};

// A Run at class version 5 (before the attempt series).
struct RunV5 {
  RunV4 v4;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t version) {
    v4.serialize(ar, version);
    const Run& r = v4.v3.v2.v1.r;
    ar(static_cast<uint8_t>(r.isolation), static_cast<uint8_t>(r.keep_worktree), r.slot);
  }
};

// A Run at class version 6 (before `supervised`).
struct RunV6 {
  RunV5 v5;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t version) {
    v5.serialize(ar, version);
    ar(v5.v4.v3.v2.v1.r.key.series);
  }
};

// A Lease at class version 1 (before repo, name, state, ref blobs, job).
struct LeaseV1 {
  Lease l;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    ar(l.host, l.boot_id, l.pid, l.pid_start_time, l.incarnation, l.acquired_at_ms, l.expires_at_ms,
       l.fencing_token, l.run_id);
  }
};

// A Cursor at class version 1 (before frontier and skipped).
struct CursorV1 {
  Cursor c;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    ar(c.sha, c.commit_time_s, c.updated_at_ms);
  }
};

// An IdemRecord at class version 1 (before first_at, last_at and owner).
struct IdemV1 {
  IdemRecord r;

  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    ar(r.op, r.params, r.status, r.attempts, r.next_retry_at_ms, r.result, r.rollback_payload,
       r.error);
  }
};

// A version 2 Cursor whose frontier claims 2^60 strings.
struct ForgedCursor {
  template <class Archive>
  void serialize(Archive& ar, const std::uint32_t /*version*/) {
    ar(std::string(40, 'e'), int64_t{1}, int64_t{2}, uint64_t{1} << 60);
  }
};

}  // namespace
}  // namespace wtd

CEREAL_CLASS_VERSION(wtd::ForgedCursor, 2)
CEREAL_CLASS_VERSION(wtd::RunV1, 1)
CEREAL_CLASS_VERSION(wtd::RunV2, 2)
CEREAL_CLASS_VERSION(wtd::RunV3, 3)
CEREAL_CLASS_VERSION(wtd::RunV4, 4)
CEREAL_CLASS_VERSION(wtd::RunV5, 5)
CEREAL_CLASS_VERSION(wtd::RunV6, 6)
CEREAL_CLASS_VERSION(wtd::LeaseV1, 1)
CEREAL_CLASS_VERSION(wtd::CursorV1, 1)
CEREAL_CLASS_VERSION(wtd::IdemV1, 1)

namespace wtd {
namespace {

Run SampleRun() {
  Run r;
  r.id = 0x0102030405060708;
  r.key = RunKey{"/srv/repo", "feature-x", "build", std::string(40, 'c')};
  r.branch = "refs/heads/feature";
  r.worktree_path = "/srv/repo/.wtd/wt/feature-x";
  r.state = RunState::kRetryWait;
  r.attempt = 2;
  r.max_attempts = 5;
  r.retry_backoff_ms = 1500;
  r.timeout_ms = -1;
  r.created_at_ms = 1'700'000'000'000;
  r.updated_at_ms = 1'700'000'000'123;
  r.started_at_ms = 1'700'000'000'050;
  r.finished_at_ms = 0;
  r.not_before_ms = 1'700'000'001'623;
  r.pid = 4242;
  r.pid_start_time = 987654321;
  r.boot_id = "3f1c1b9e-0d7e-4b6c-9a3e-1c2d3e4f5a6b";
  r.incarnation = 17;
  r.exit_code = 3;
  r.term_signal = 9;
  r.duration_ms = 73;
  r.log_path = "/var/log/wtd/run-1.log";
  r.error = "exit status 3";
  r.log_bytes = 1 << 20;
  r.log_truncated = true;
  r.command = "make test";
  r.env = {{"MAKEFLAGS", "-j2"}, {"EMPTY", ""}};
  r.commit_subject = "Fix the build";
  r.commit_author = "Ada <ada@example.com>";
  r.commit_time_s = 1'699'999'000;
  r.lock_waits = 4;
  r.lease_token = 0x1122334455;
  r.finish_state = RunState::kTimedOut;
  r.isolation = Isolation::kInplace;
  r.keep_worktree = KeepWorktree::kOnFailure;
  r.slot = "wtd-0123abcd-2";
  return r;
}

Slot SampleSlot() {
  Slot s;
  s.name = "wtd-0123abcd-1";
  s.repo = "/srv/repo";
  s.path = "/var/lib/wtd/worktrees/wtd-0123abcd-1";
  s.sha = std::string(40, 'c');
  s.state = SlotState::kKept;
  s.run_id = 17;
  s.idem_key = std::string(64, 'f');
  s.branch = "wtd/slots/wtd-0123abcd-1";
  s.created_at_ms = 1'700'000'000'000;
  s.updated_at_ms = 1'700'000'000'500;
  return s;
}

RunStats SampleRunStats() {
  RunStats s;
  s.repo = "/srv/repo";
  s.worktree = "main";
  s.job = "build";
  s.hour_ms = 1'699'999'200'000;
  s.succeeded = 40;
  s.failed = 3;
  s.timed_out = 1;
  s.cancelled = 2;
  s.skipped = 1;
  s.attempts = 51;
  s.timed = 44;
  s.duration_sum_ms = 123'456;
  s.lock_waits = 4;
  s.histogram.assign(kRunStatsBuckets, 0);
  s.histogram[3] = 40;
  s.histogram[kRunStatsBuckets - 1] = 4;
  s.slowest = {{17, 900'000, RunState::kSucceeded, 1'700'000'000'000},
               {12, 800'000, RunState::kTimedOut, 1'700'000'001'000}};
  s.failures = {{12, 800'000, RunState::kTimedOut, 1'700'000'001'000},
                {9, 5, RunState::kFailed, 1'700'000'000'500}};
  return s;
}

Lease SampleLease() {
  Lease l;
  l.host = "host-a";
  l.boot_id = "boot";
  l.pid = 77;
  l.pid_start_time = 12345;
  l.incarnation = 3;
  l.acquired_at_ms = 1000;
  l.expires_at_ms = 61000;
  l.fencing_token = 9;
  l.run_id = 42;
  l.repo = "/srv/repo";
  l.name = "main/build/" + std::string(40, 'c');
  l.state = LeaseState::kReleasing;
  l.ref_blob = std::string(40, '1');
  l.prev_ref_blob = std::string(40, '2');
  l.job_pid = 4242;
  l.job_start_time = 99;
  return l;
}

Cursor SampleCursor() {
  return Cursor{std::string(40, 'f'),
                1'699'999'999,
                1'700'000'000'000,
                {std::string(40, 'a'), std::string(40, 'b')},
                7};
}

IdemRecord SampleIdem() {
  IdemRecord r;
  r.op = "worktree_add";
  r.params = "params";
  r.status = IdemStatus::kFailed;
  r.attempts = 3;
  r.next_retry_at_ms = 5000;
  r.result = "result";
  r.rollback_payload = std::string("rb\0x", 4);
  r.error = "err";
  r.first_at_ms = 1'700'000'000'000;
  r.last_at_ms = 1'700'000'004'000;
  r.owner = IdemOwner{"host-a", "boot", 77, 12345, 3};
  return r;
}

Event SampleEvent() {
  return Event{99, RunState::kRunning, RunState::kSucceeded, 1, 1'700'000'000'000};
}

template <typename T>
std::string EncodeOld(RecordKind kind, const T& old) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(old);
  }
  return SealRecord(kind, out.str());
}

std::string EncodeV1(const RunV1& v1) {
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(v1);
  }
  return SealRecord(RecordKind::kRun, out.str());
}

TEST(RecordsTest, EveryRecordKindRoundTrips) {
  Result<wtd::Run> run = DecodeRun(EncodeRun(SampleRun()));
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(*run, SampleRun());

  Result<Cursor> cursor = DecodeCursor(EncodeCursor(SampleCursor()));
  ASSERT_TRUE(cursor.ok());
  EXPECT_EQ(*cursor, SampleCursor());

  Lease lease = SampleLease();
  Result<Lease> l = DecodeLease(EncodeLease(lease));
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(*l, lease);

  Result<IdemRecord> i = DecodeIdem(EncodeIdem(SampleIdem()));
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(*i, SampleIdem());

  Result<Event> e = DecodeEvent(EncodeEvent(SampleEvent()));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(*e, SampleEvent());

  WatchedRepos repos{{"/srv/a", "/srv/b"}};
  Result<WatchedRepos> w = DecodeWatchedRepos(EncodeWatchedRepos(repos));
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  EXPECT_EQ(*w, repos);

  Result<wtd::Run> empty = DecodeRun(EncodeRun(wtd::Run()));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, wtd::Run());
}

TEST(RecordsTest, RunOfClassVersionOneDecodesWithNewFieldsDefaulted) {
  RunV1 v1;
  v1.r = SampleRun();
  v1.state = static_cast<uint8_t>(v1.r.state);
  Result<wtd::Run> decoded = DecodeRun(EncodeV1(v1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  wtd::Run expected = SampleRun();
  expected.log_bytes = 0;
  expected.log_truncated = false;
  expected.command.clear();
  expected.env.clear();
  expected.commit_subject.clear();
  expected.commit_author.clear();
  expected.commit_time_s = 0;
  expected.lock_waits = 0;
  expected.lease_token = 0;
  expected.finish_state = RunState::kPending;
  expected.isolation = Isolation::kCommit;
  expected.keep_worktree = KeepWorktree::kNever;
  expected.slot.clear();
  EXPECT_EQ(*decoded, expected);
}

TEST(RecordsTest, RunOfClassVersionThreeDecodesWithNoLockWaitsAndNoLease) {
  RunV3 v3;
  v3.v2.v1.r = SampleRun();
  v3.v2.v1.state = static_cast<uint8_t>(v3.v2.v1.r.state);
  Result<wtd::Run> decoded = DecodeRun(EncodeOld(RecordKind::kRun, v3));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  wtd::Run expected = SampleRun();
  expected.lock_waits = 0;
  expected.lease_token = 0;
  expected.finish_state = RunState::kPending;
  expected.isolation = Isolation::kCommit;
  expected.keep_worktree = KeepWorktree::kNever;
  expected.slot.clear();
  EXPECT_EQ(*decoded, expected);
}

TEST(RecordsTest, RunOfClassVersionFourDecodesIsolatedAtItsCommitWithNoSlot) {
  RunV4 v4;
  v4.v3.v2.v1.r = SampleRun();
  v4.v3.v2.v1.state = static_cast<uint8_t>(v4.v3.v2.v1.r.state);
  Result<wtd::Run> decoded = DecodeRun(EncodeOld(RecordKind::kRun, v4));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  wtd::Run expected = SampleRun();
  expected.isolation = Isolation::kCommit;
  expected.keep_worktree = KeepWorktree::kNever;
  expected.slot.clear();
  EXPECT_EQ(*decoded, expected);
}

TEST(RecordsTest, TheAttemptSeriesRoundTripsAndARunOfClassVersionFiveIsSeriesZero) {
  wtd::Run again = SampleRun();
  again.key.series = 3;
  Result<wtd::Run> back = DecodeRun(EncodeRun(again));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->key.series, 3u);
  EXPECT_EQ(*back, again);

  RunV5 v5;
  v5.v4.v3.v2.v1.r = again;
  v5.v4.v3.v2.v1.state = static_cast<uint8_t>(again.state);
  Result<wtd::Run> old = DecodeRun(EncodeOld(RecordKind::kRun, v5));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(*old, SampleRun());  // everything but the series, which reads as 0
}

TEST(RecordsTest, SupervisedRoundTripsAndARunOfClassVersionSixIsNotSupervised) {
  wtd::Run supervised = SampleRun();
  supervised.key.series = 2;
  supervised.supervised = true;
  Result<wtd::Run> back = DecodeRun(EncodeRun(supervised));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, supervised);

  RunV6 v6;
  v6.v5.v4.v3.v2.v1.r = supervised;
  v6.v5.v4.v3.v2.v1.state = static_cast<uint8_t>(supervised.state);
  Result<wtd::Run> old = DecodeRun(EncodeOld(RecordKind::kRun, v6));
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_FALSE(old->supervised);  // its pid is the job's own
  old->supervised = true;
  EXPECT_EQ(*old, supervised);
}

TEST(RecordsTest, ARunWithAnUnknownIsolationIsCorruption) {
  wtd::Run r = SampleRun();
  r.isolation = static_cast<Isolation>(2);
  Result<wtd::Run> decoded = DecodeRun(EncodeRun(r));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().IsCorruption()) << decoded.status().ToString();
}

TEST(RecordsTest, ASlotRoundTripsAndAnUnknownStateIsCorruption) {
  Result<Slot> s = DecodeSlot(EncodeSlot(SampleSlot()));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, SampleSlot());
  Slot bad = SampleSlot();
  bad.state = static_cast<SlotState>(kSlotStateCount);
  Result<Slot> refused = DecodeSlot(EncodeSlot(bad));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("worktree slot: invalid state"), std::string::npos)
      << refused.status().ToString();
  EXPECT_EQ(SlotStateName(SlotState::kRemoving), "removing");
}

TEST(RecordsTest, RunStatsRoundTripAndAreCheckedOnDecode) {
  Result<RunStats> s = DecodeRunStats(EncodeRunStats(SampleRunStats()));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, SampleRunStats());
  Result<RunStats> empty = DecodeRunStats(EncodeRunStats(RunStats()));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(*empty, RunStats());
  // Another histogram layout, too many runs named, or an unknown state.
  RunStats wrong = SampleRunStats();
  wrong.histogram.pop_back();
  Result<RunStats> refused = DecodeRunStats(EncodeRunStats(wrong));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("histogram buckets"), std::string::npos)
      << refused.status().ToString();
  wrong = SampleRunStats();
  wrong.failures.resize(kRunStatsFailures + 1);
  EXPECT_TRUE(DecodeRunStats(EncodeRunStats(wrong)).status().IsCorruption());
  wrong = SampleRunStats();
  wrong.slowest[0].state = static_cast<RunState>(kRunStateCount);
  EXPECT_TRUE(DecodeRunStats(EncodeRunStats(wrong)).status().IsCorruption());
  // Another kind's value stored at its key is refused by the envelope.
  EXPECT_TRUE(DecodeRunStats(EncodeSlot(SampleSlot())).status().IsCorruption());
}

TEST(RecordsTest, LeaseOfClassVersionOneDecodesHeldWithNoNameOrBlob) {
  LeaseV1 v1{SampleLease()};
  Result<Lease> decoded = DecodeLease(EncodeOld(RecordKind::kLease, v1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->fencing_token, 9u);
  EXPECT_EQ(decoded->run_id, 42u);
  EXPECT_EQ(decoded->state, LeaseState::kHeld);
  EXPECT_TRUE(decoded->repo.empty());
  EXPECT_TRUE(decoded->ref_blob.empty());
  EXPECT_EQ(decoded->job_pid, 0);
}

TEST(RecordsTest, LeaseWithInvalidStateAndRunWithInvalidFinishStateAreCorruption) {
  Lease l = SampleLease();
  l.state = static_cast<LeaseState>(kLeaseStateCount);
  Result<Lease> lease = DecodeLease(EncodeLease(l));
  ASSERT_FALSE(lease.ok());
  EXPECT_EQ(lease.status().message(), "lease: invalid state 2");
  wtd::Run r = SampleRun();
  r.finish_state = static_cast<RunState>(kRunStateCount);
  Result<wtd::Run> run = DecodeRun(EncodeRun(r));
  ASSERT_FALSE(run.ok());
  EXPECT_EQ(run.status().message(), "run: invalid finish state 12");
}

TEST(RecordsTest, RunOfClassVersionTwoDecodesWithoutItsJob) {
  RunV2 v2;
  v2.v1.r = SampleRun();
  v2.v1.state = static_cast<uint8_t>(v2.v1.r.state);
  Result<wtd::Run> decoded = DecodeRun(EncodeOld(RecordKind::kRun, v2));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->log_bytes, SampleRun().log_bytes);
  EXPECT_TRUE(decoded->log_truncated);
  EXPECT_TRUE(decoded->command.empty());
  EXPECT_TRUE(decoded->env.empty());
  EXPECT_EQ(decoded->commit_time_s, 0);
}

TEST(RecordsTest, CursorOfClassVersionOneDecodesWithNoFrontier) {
  CursorV1 v1;
  v1.c.sha = std::string(40, 'e');
  v1.c.commit_time_s = 12;
  v1.c.updated_at_ms = 34;
  Result<Cursor> decoded = DecodeCursor(EncodeOld(RecordKind::kCursor, v1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(*decoded, v1.c);
  EXPECT_TRUE(decoded->frontier.empty());
}

TEST(RecordsTest, IdemRecordOfClassVersionOneDecodesWithNoTimesOrOwner) {
  IdemV1 v1{SampleIdem()};
  Result<IdemRecord> decoded = DecodeIdem(EncodeOld(RecordKind::kIdem, v1));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  IdemRecord expected = SampleIdem();
  expected.first_at_ms = 0;
  expected.last_at_ms = 0;
  expected.owner = IdemOwner();
  EXPECT_EQ(*decoded, expected);
}

TEST(RecordsTest, IdemRecordWithInvalidStatusIsCorruption) {
  IdemRecord r = SampleIdem();
  r.status = static_cast<IdemStatus>(kIdemStatusCount);
  Result<IdemRecord> decoded = DecodeIdem(EncodeIdem(r));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().IsCorruption());
  EXPECT_EQ(decoded.status().message(), "idempotency record: invalid status 5");
}

TEST(RecordsTest, CursorWithForgedFrontierCountIsCorruptionWithoutAllocating) {
  Result<Cursor> decoded = DecodeCursor(EncodeOld(RecordKind::kCursor, ForgedCursor()));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().IsCorruption()) << decoded.status().ToString();
}

TEST(RecordsTest, RunWithInvalidStateIsCorruption) {
  RunV1 v1;
  v1.state = kRunStateCount;
  Result<wtd::Run> decoded = DecodeRun(EncodeV1(v1));
  ASSERT_FALSE(decoded.ok());
  EXPECT_TRUE(decoded.status().IsCorruption()) << decoded.status().ToString();
  EXPECT_NE(decoded.status().message().find("invalid state"), std::string::npos);
}

TEST(RecordsTest, WrongRecordKindIsRefused) {
  Result<Cursor> c = DecodeCursor(EncodeRun(SampleRun()));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsCorruption());
  EXPECT_NE(c.status().message().find("record kind 1"), std::string::npos) << c.status().ToString();
  EXPECT_FALSE(DecodeRun(EncodeEvent(SampleEvent())).ok());
  EXPECT_FALSE(DecodeEvent(EncodeCursor(SampleCursor())).ok());
}

TEST(RecordsTest, TrailingBytesAreCorruption) {
  std::string payload = EncodeCursor(SampleCursor()).substr(kRecordHeaderSize);
  Result<Cursor> c = DecodeCursor(SealRecord(RecordKind::kCursor, payload + "x"));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsCorruption());
}

// Every proper prefix of `encoded` and every single-byte flip of it must
// decode to Corruption. `decode` returns the status of a decode.
template <typename DecodeFn>
void ExpectEveryDamageIsCorruption(const std::string& encoded, const DecodeFn& decode) {
  for (size_t n = 0; n < encoded.size(); ++n) {
    Status s = decode(encoded.substr(0, n));
    EXPECT_TRUE(s.IsCorruption()) << "truncated to " << n << ": " << s.ToString();
  }
  for (size_t i = 0; i < encoded.size(); ++i) {
    for (uint8_t mask : {0x01, 0x80, 0xFF}) {
      std::string damaged = encoded;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      Status s = decode(damaged);
      EXPECT_TRUE(s.IsCorruption()) << "byte " << i << " ^ " << int{mask} << ": " << s.ToString();
    }
  }
}

// Damage behind a valid checksum (a record sealed over a bad payload) gets
// past the CRC and reaches cereal: it must be refused or decode, never crash
// or allocate without bound.
template <typename DecodeFn>
void ExpectDamagedPayloadNeverCrashes(RecordKind kind, const std::string& encoded,
                                      const DecodeFn& decode) {
  std::string payload = encoded.substr(kRecordHeaderSize);
  for (size_t n = 0; n < payload.size(); ++n) {
    Status s = decode(SealRecord(kind, payload.substr(0, n)));
    EXPECT_TRUE(s.IsCorruption()) << "payload truncated to " << n << ": " << s.ToString();
  }
  for (size_t i = 0; i < payload.size(); ++i) {
    for (uint8_t mask : {0x01, 0x40, 0xFF}) {
      std::string damaged = payload;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      Status s = decode(SealRecord(kind, damaged));
      EXPECT_TRUE(s.ok() || s.IsCorruption()) << "payload byte " << i << ": " << s.ToString();
    }
  }
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfARunIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeRun(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeRun(SampleRun()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kRun, EncodeRun(SampleRun()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfACursorIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeCursor(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeCursor(SampleCursor()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kCursor, EncodeCursor(SampleCursor()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfAnEventIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeEvent(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeEvent(SampleEvent()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kEvent, EncodeEvent(SampleEvent()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfALeaseIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeLease(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeLease(SampleLease()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kLease, EncodeLease(SampleLease()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfAnIdemRecordIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeIdem(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeIdem(SampleIdem()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kIdem, EncodeIdem(SampleIdem()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfWatchedReposIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeWatchedRepos(v).status(); };
  std::string encoded = EncodeWatchedRepos(WatchedRepos{{"/srv/a", "/srv/b"}});
  ExpectEveryDamageIsCorruption(encoded, decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kWatchedRepos, encoded, decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfASlotIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeSlot(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeSlot(SampleSlot()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kSlot, EncodeSlot(SampleSlot()), decode);
}

TEST(RecordsTest, EveryTruncationAndByteFlipOfRunStatsIsCorruption) {
  auto decode = [](std::string_view v) { return DecodeRunStats(v).status(); };
  ExpectEveryDamageIsCorruption(EncodeRunStats(SampleRunStats()), decode);
  ExpectDamagedPayloadNeverCrashes(RecordKind::kRunStats, EncodeRunStats(SampleRunStats()), decode);
}

TEST(RecordsTest, ForgedStringLengthIsRefusedBeforeAllocating) {
  // A cursor whose sha claims 2^62 bytes: refused, not a bad_alloc or a hang.
  std::ostringstream out;
  {
    cereal::PortableBinaryOutputArchive ar(out);
    ar(uint32_t{1});  // class version
    ar(cereal::make_size_tag(uint64_t{1} << 62));
  }
  Result<Cursor> c = DecodeCursor(SealRecord(RecordKind::kCursor, out.str()));
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(c.status().IsCorruption()) << c.status().ToString();
}

TEST(RecordsTest, RunStateNamesRoundTrip) {
  for (int i = 0; i < kRunStateCount; ++i) {
    auto s = static_cast<RunState>(i);
    Result<RunState> parsed = ParseRunState(RunStateName(s));
    ASSERT_TRUE(parsed.ok()) << RunStateName(s);
    EXPECT_EQ(*parsed, s);
  }
  EXPECT_EQ(ParseRunState("finishing").value(), RunState::kFinishing);
  EXPECT_EQ(ParseRunState("skipped").value(), RunState::kSkipped);
  EXPECT_EQ(static_cast<int>(RunState::kFinishing), 10);  // stored: never renumbered
  EXPECT_EQ(static_cast<int>(RunState::kSkipped), 11);
  EXPECT_FALSE(IsTerminal(RunState::kFinishing));
  EXPECT_TRUE(IsTerminal(RunState::kSkipped));
  EXPECT_EQ(LeaseStateName(LeaseState::kHeld), "held");
  EXPECT_EQ(LeaseStateName(LeaseState::kReleasing), "releasing");
  for (int i = 0; i < kIdemStatusCount; ++i) {
    auto s = static_cast<IdemStatus>(i);
    Result<IdemStatus> parsed = ParseIdemStatus(IdemStatusName(s));
    ASSERT_TRUE(parsed.ok()) << IdemStatusName(s);
    EXPECT_EQ(*parsed, s);
  }
  // Stored: never renumbered.
  EXPECT_EQ(static_cast<int>(ParseIdemStatus("in_progress").value()), 0);
  EXPECT_EQ(static_cast<int>(ParseIdemStatus("completed").value()), 1);
  EXPECT_EQ(static_cast<int>(ParseIdemStatus("failed").value()), 2);
  EXPECT_EQ(static_cast<int>(ParseIdemStatus("rolled_back").value()), 3);
  EXPECT_EQ(static_cast<int>(ParseIdemStatus("blocked").value()), 4);
  EXPECT_TRUE(ParseIdemStatus("done").status().IsInvalidArgument());
  EXPECT_EQ(IdemStatusName(static_cast<IdemStatus>(9)), "invalid");
  EXPECT_TRUE(ParseRunState("sleeping").status().IsInvalidArgument());
  EXPECT_EQ(RunStateName(static_cast<RunState>(200)), "invalid");
}

}  // namespace
}  // namespace wtd
