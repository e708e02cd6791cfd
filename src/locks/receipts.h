// Receipts: job outcomes as lines in the git note of the commit
// (docs/design/locks.md, "Receipts").
//
// The note of commit SHA under the notes ref (default kDefaultNotesRef, so
// `git log --notes=wtd` shows it) holds one receipt per (worktree, job,
// series), each one JSON line:
//   {"worktree":"main","job":"build","state":"succeeded","exit_code":0,
//    "attempt":1,"run_id":42,"host":"ci-1","finished_at":"2026-12-02T12:00:00.000Z",
//    "duration_ms":1234}
// (on one line). finished_at is RFC 3339 UTC with milliseconds. A run of an
// attempt series > 0 (`wtctl trigger --again`) adds "series":N; a receipt
// without it is series 0's. The first receipt for a (worktree, job, series)
// wins: later ones are never appended. Other
// lines of the note (other jobs' receipts, text a person wrote) are kept as
// they are; a line that is not a receipt is ignored by readers and listed by
// ReadReceipts.
//
// Writes go through the LockRefs' repository handle (and its mutex): a new
// notes commit, then the notes ref moved by compare-and-swap from the commit
// it was built on (created only if absent when there is none), retried from
// the start on a concurrent change. Durable like a lock (lock_refs.h): the
// new objects, the notes ref and the directory entries leading to them are
// fsynced before AppendReceiptIfFirst returns.
//
// Thread-safety: as LockRefs (each call holds its mutex).
#ifndef WTD_LOCKS_RECEIPTS_H_
#define WTD_LOCKS_RECEIPTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "locks/lock_refs.h"
#include "wtd/status.h"

namespace wtd::locks {

struct Receipt {
  std::string worktree;  // worktree id
  std::string job;
  std::string state;  // the terminal run state: "succeeded", "failed", ...
  int32_t exit_code = -1;
  uint32_t attempt = 0;
  uint64_t run_id = 0;
  std::string host;
  int64_t finished_at_ms = 0;  // written as RFC 3339 UTC, milliseconds
  int64_t duration_ms = 0;
  // Who wrote it, beyond the host: the daemon's pid and its state store's id
  // (StateStore::store_id). Optional when read: 0 and "" when absent.
  int64_t pid = 0;
  std::string store;
  // The run key's attempt series; written only when > 0, 0 when absent.
  uint32_t series = 0;

  friend bool operator==(const Receipt&, const Receipt&) = default;
};

// One JSON line, without the newline. Keys in the order above; pid and
// store only when set.
std::string EncodeReceipt(const Receipt& r);

// "HOST pid N run R" ("HOST run R" without a pid): whose receipt it is, as a
// skipped run's error names it.
std::string DoneBy(const Receipt& r);

// Parses one line. Corruption "receipt: ..." naming the field when it is not
// a receipt (not a JSON object, a field missing or mistyped, an empty
// worktree/job/state/host, finished_at not RFC 3339 UTC). Unknown fields are
// ignored.
Result<Receipt> ParseReceipt(std::string_view line);

// "2026-12-02T12:00:00.123Z" (fraction optional, 1-9 digits, cut to ms) to ms
// since the epoch. InvalidArgument otherwise.
Result<int64_t> ParseRfc3339Utc(std::string_view text);

struct NoteReceipts {
  std::vector<Receipt> receipts;  // in note order
  // Lines that are not receipts, "<line number>: <text>" (1-based); blank
  // lines are not listed.
  std::vector<std::string> other_lines;
  std::string text;  // the whole note ("" when there is none)
};

// The receipts in the note of `sha`. A note that does not exist (or no notes
// ref) gives an empty NoteReceipts.
Result<NoteReceipts> ReadReceipts(LockRefs& repo, const std::string& notes_ref,
                                  const std::string& sha);

// The first receipt for (worktree, job, series) in the note of `sha`, if
// any. An earlier series' receipt does not count.
Result<std::optional<Receipt>> FindReceipt(LockRefs& repo, const std::string& notes_ref,
                                           const std::string& sha, const std::string& worktree,
                                           const std::string& job, uint32_t series = 0);

// Appends `receipt` to the note of `sha` unless that note already holds one
// for (receipt.worktree, receipt.job, receipt.series); returns the receipt that is there now
// (the caller's when it was first, the earlier one otherwise). Retries up to
// kMaxNoteAttempts times when another writer moved the notes ref meanwhile,
// then Aborted — or FailedPrecondition when the last attempt found the notes
// ref's `.lock` file (lock_refs.h). InvalidArgument for a bad notes ref, sha
// or receipt.
Result<Receipt> AppendReceiptIfFirst(LockRefs& repo, const std::string& notes_ref,
                                     const std::string& sha, const Receipt& receipt);
inline constexpr int kMaxNoteAttempts = 64;

}  // namespace wtd::locks

#endif  // WTD_LOCKS_RECEIPTS_H_
