#include "locks/receipts.h"

#include <git2.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "base/time_format.h"
#include "locks/git_handle.h"

namespace wtd::locks {

// Lets the receipt functions use a LockRefs' handle under its mutex.
struct ReceiptsAccess {
  static Mutex* mu(LockRefs& r) RETURN_CAPABILITY(r.mu_) { return &r.mu_; }
  static GitHandle* git(LockRefs& r) REQUIRES(r.mu_) { return r.git_.get(); }
};

namespace {

using Json = nlohmann::ordered_json;

Status FieldError(std::string_view field, std::string_view why) {
  return Status::Corruption("receipt: field '" + std::string(field) + "' " + std::string(why));
}

template <typename T>
Status GetInt(const Json& obj, const char* name, T* out) {
  auto it = obj.find(name);
  if (it == obj.end()) return FieldError(name, "is missing");
  if (!it->is_number_integer()) return FieldError(name, "is not an integer");
  if (it->is_number_unsigned()) {
    uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
      return FieldError(name, "is out of range");
    }
    *out = static_cast<T>(v);
    return Status::OK();
  }
  int64_t v = it->get<int64_t>();
  if (v < static_cast<int64_t>(std::numeric_limits<T>::min())) {
    return FieldError(name, "is out of range");
  }
  *out = static_cast<T>(v);
  return Status::OK();
}

Status GetText(const Json& obj, const char* name, std::string* out) {
  auto it = obj.find(name);
  if (it == obj.end()) return FieldError(name, "is missing");
  if (!it->is_string()) return FieldError(name, "is not a string");
  *out = it->get<std::string>();
  if (out->empty()) return FieldError(name, "is empty");
  return Status::OK();
}

// Digits text[pos, pos+n) as a number; -1 when any is not a digit.
int Digits(std::string_view text, size_t pos, size_t n) {
  if (pos + n > text.size()) return -1;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return -1;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

unsigned DaysInMonth(int y, int m) {
  static const unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kDays[m - 1];
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

NoteReceipts ParseNote(std::string text) {
  NoteReceipts out;
  std::vector<std::string_view> lines = Lines(text);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    Result<Receipt> r = ParseReceipt(line);
    if (r.ok()) {
      out.receipts.push_back(std::move(*r));
    } else {
      out.other_lines.push_back(std::to_string(i + 1) + ": " + std::string(line));
    }
  }
  out.text = std::move(text);
  return out;
}

std::string Where(LockRefs& repo, const std::string& notes_ref, const std::string& sha) {
  return "repository " + repo.repo_path() + ", notes ref " + notes_ref + ", commit " + sha;
}

// The commit the notes ref points at; nullptr (and OK) when there is no
// notes ref.
Result<CommitPtr> NotesCommit(git_repository* repo, const std::string& notes_ref,
                              const std::string& where) {
  git_reference* raw = nullptr;
  int rc = git_reference_lookup(&raw, repo, notes_ref.c_str());
  ReferencePtr ref(raw);
  if (rc == GIT_ENOTFOUND) return CommitPtr();
  if (rc < 0) return GitError(rc, where + ": look up the notes ref");
  const git_oid* target = git_reference_target(ref.get());
  if (target == nullptr) return Status::Corruption(where + ": the notes ref is symbolic");
  git_commit* craw = nullptr;
  rc = git_commit_lookup(&craw, repo, target);
  if (rc < 0) return GitError(rc, where + ": read the notes commit " + OidToString(*target));
  return CommitPtr(craw);
}

// The note of `sha` in `notes` ("" when none).
Result<std::string> NoteText(git_repository* repo, git_commit* notes, const git_oid& sha,
                             const std::string& where) {
  if (notes == nullptr) return std::string();
  git_note* raw = nullptr;
  int rc = git_note_commit_read(&raw, repo, notes, &sha);
  NotePtr note(raw);
  if (rc == GIT_ENOTFOUND) return std::string();
  if (rc < 0) return GitError(rc, where + ": read the note");
  const char* msg = git_note_message(note.get());
  return std::string(msg ? msg : "");
}

Result<NoteReceipts> ReadLocked(git_repository* repo, const std::string& notes_ref,
                                const git_oid& sha, const std::string& where) {
  WTD_ASSIGN_OR_RETURN(CommitPtr notes, NotesCommit(repo, notes_ref, where));
  WTD_ASSIGN_OR_RETURN(std::string text, NoteText(repo, notes.get(), sha, where));
  return ParseNote(std::move(text));
}

const Receipt* FindIn(const NoteReceipts& note, const std::string& worktree, const std::string& job,
                      uint32_t series) {
  for (const Receipt& r : note.receipts) {
    if (r.worktree == worktree && r.job == job && r.series == series) return &r;
  }
  return nullptr;
}

Result<SignaturePtr> Signature(const std::string& host) {
  git_signature* raw = nullptr;
  if (git_signature_now(&raw, "wtd", ("wtd@" + host).c_str()) < 0) {
    int rc = git_signature_now(&raw, "wtd", "wtd@localhost");
    if (rc < 0) return GitError(rc, "make the notes commit signature");
  }
  return SignaturePtr(raw);
}

void Backoff(int attempt) {
  thread_local std::minstd_rand rng(static_cast<unsigned>(
      std::hash<std::thread::id>()(std::this_thread::get_id()) ^ static_cast<unsigned>(getpid())));
  int cap_us = 100 << std::min(attempt, 6);  // up to 6.4 ms
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % static_cast<unsigned>(cap_us)));
}

// The new notes commit: `old_text` plus the receipt's line.
Result<git_oid> CommitNote(git_repository* repo, git_commit* parent, const git_oid& sha,
                           const std::string& old_text, const Receipt& receipt,
                           const std::string& where) {
  std::string text = old_text;
  if (!text.empty() && text.back() != '\n') text += '\n';
  text += EncodeReceipt(receipt) + "\n";
  WTD_ASSIGN_OR_RETURN(SignaturePtr sig, Signature(receipt.host));
  git_oid commit, blob;
  int rc = git_note_commit_create(&commit, &blob, repo, parent, sig.get(), sig.get(), &sha,
                                  text.c_str(), /*allow_note_overwrite=*/1);
  if (rc < 0) return GitError(rc, where + ": write the notes commit");
  return commit;
}

// Moves the notes ref from `parent` (nullptr: create it) to `commit`.
// Returns the libgit2 code.
int MoveNotesRef(git_repository* repo, const std::string& notes_ref, git_commit* parent,
                 const git_oid& commit) {
  git_reference* raw = nullptr;
  git_oid zero{};
  int rc = parent != nullptr
               ? git_reference_create_matching(&raw, repo, notes_ref.c_str(), &commit, 1,
                                               git_commit_id(parent), "wtd: receipt")
               : git_reference_create_matching(&raw, repo, notes_ref.c_str(), &commit, 0, &zero,
                                               "wtd: receipt");
  git_reference_free(raw);
  return rc;
}

// fsyncs what a notes commit added: the new fan-out directories' entries
// (objects/ itself; libgit2 synced each object and its fan-out directory)
// and the directories leading to the notes ref (libgit2 synced the ref and
// its own directory).
Status SyncNotes(GitHandle* git, const std::string& notes_ref, const git_oid& commit) {
  std::string hex = OidToString(commit);
  WTD_RETURN_IF_ERROR(git->SyncDirsTo("objects/" + hex.substr(0, 2) + "/" + hex.substr(2)));
  WTD_RETURN_IF_ERROR(git->SyncParentOf("objects/" + hex.substr(0, 2)));
  return git->SyncDirsTo(notes_ref);
}

Status CheckReceipt(const Receipt& r) {
  Result<Receipt> back = ParseReceipt(EncodeReceipt(r));
  if (!back.ok()) return Status::InvalidArgument(back.status().message());
  return Status::OK();
}

}  // namespace

std::string EncodeReceipt(const Receipt& r) {
  Json j;
  j["worktree"] = r.worktree;
  j["job"] = r.job;
  j["state"] = r.state;
  j["exit_code"] = r.exit_code;
  j["attempt"] = r.attempt;
  j["run_id"] = r.run_id;
  j["host"] = r.host;
  j["finished_at"] = FormatRfc3339(r.finished_at_ms);
  j["duration_ms"] = r.duration_ms;
  if (r.pid != 0) j["pid"] = r.pid;
  if (!r.store.empty()) j["store"] = r.store;
  if (r.series != 0) j["series"] = r.series;
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Result<Receipt> ParseReceipt(std::string_view line) {
  Json j = Json::parse(line.begin(), line.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Corruption("receipt: not JSON");
  if (!j.is_object()) return Status::Corruption("receipt: not a JSON object");
  Receipt r;
  WTD_RETURN_IF_ERROR(GetText(j, "worktree", &r.worktree));
  WTD_RETURN_IF_ERROR(GetText(j, "job", &r.job));
  WTD_RETURN_IF_ERROR(GetText(j, "state", &r.state));
  WTD_RETURN_IF_ERROR(GetInt(j, "exit_code", &r.exit_code));
  WTD_RETURN_IF_ERROR(GetInt(j, "attempt", &r.attempt));
  WTD_RETURN_IF_ERROR(GetInt(j, "run_id", &r.run_id));
  WTD_RETURN_IF_ERROR(GetText(j, "host", &r.host));
  std::string finished;
  WTD_RETURN_IF_ERROR(GetText(j, "finished_at", &finished));
  Result<int64_t> ms = ParseRfc3339Utc(finished);
  if (!ms.ok()) return FieldError("finished_at", ms.status().message());
  r.finished_at_ms = *ms;
  WTD_RETURN_IF_ERROR(GetInt(j, "duration_ms", &r.duration_ms));
  if (r.duration_ms < 0) return FieldError("duration_ms", "is negative");
  if (j.contains("pid")) WTD_RETURN_IF_ERROR(GetInt(j, "pid", &r.pid));
  if (j.contains("store")) WTD_RETURN_IF_ERROR(GetText(j, "store", &r.store));
  if (j.contains("series")) WTD_RETURN_IF_ERROR(GetInt(j, "series", &r.series));
  return r;
}

std::string DoneBy(const Receipt& r) {
  return r.host + (r.pid != 0 ? " pid " + std::to_string(r.pid) : "") + " run " +
         std::to_string(r.run_id);
}

Result<int64_t> ParseRfc3339Utc(std::string_view t) {
  auto bad = [&] {
    return Status::InvalidArgument("'" + std::string(t) +
                                   "' is not RFC 3339 UTC (YYYY-MM-DDTHH:MM:SS[.fff]Z)");
  };
  if (t.size() < 20 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't') ||
      t[13] != ':' || t[16] != ':') {
    return bad();
  }
  int y = Digits(t, 0, 4), mo = Digits(t, 5, 2), d = Digits(t, 8, 2);
  int h = Digits(t, 11, 2), mi = Digits(t, 14, 2), s = Digits(t, 17, 2);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || s < 0 ||
      s > 59 || static_cast<unsigned>(d) > DaysInMonth(y, mo)) {
    return bad();
  }
  size_t pos = 19;
  int64_t ms = 0;
  if (t[pos] == '.') {
    size_t start = ++pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') ++pos;
    size_t n = pos - start;
    if (n == 0 || n > 9) return bad();
    for (size_t i = 0; i < 3; ++i) ms = ms * 10 + (i < n ? t[start + i] - '0' : 0);
  }
  if (pos + 1 != t.size() || (t[pos] != 'Z' && t[pos] != 'z')) return bad();
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60'000 + s * 1000 + ms;
}

Result<NoteReceipts> ReadReceipts(LockRefs& repo, const std::string& notes_ref,
                                  const std::string& sha) {
  WTD_RETURN_IF_ERROR(ValidateNotesRef(notes_ref));
  std::string where = Where(repo, notes_ref, sha);
  git_oid oid;
  WTD_RETURN_IF_ERROR(ParseOid(sha, where + ": commit", &oid));
  MutexLock lock(ReceiptsAccess::mu(repo));
  return ReadLocked(ReceiptsAccess::git(repo)->repo(), notes_ref, oid, where);
}

Result<std::optional<Receipt>> FindReceipt(LockRefs& repo, const std::string& notes_ref,
                                           const std::string& sha, const std::string& worktree,
                                           const std::string& job, uint32_t series) {
  WTD_ASSIGN_OR_RETURN(NoteReceipts note, ReadReceipts(repo, notes_ref, sha));
  const Receipt* r = FindIn(note, worktree, job, series);
  if (r == nullptr) return std::optional<Receipt>();
  return std::optional<Receipt>(*r);
}

Result<Receipt> AppendReceiptIfFirst(LockRefs& repo, const std::string& notes_ref,
                                     const std::string& sha, const Receipt& receipt) {
  WTD_RETURN_IF_ERROR(ValidateNotesRef(notes_ref));
  std::string where = Where(repo, notes_ref, sha);
  git_oid oid;
  WTD_RETURN_IF_ERROR(ParseOid(sha, where + ": commit", &oid));
  Status valid = CheckReceipt(receipt);
  if (!valid.ok()) return valid.WithContext(where);
  MutexLock lock(ReceiptsAccess::mu(repo));
  GitHandle* git = ReceiptsAccess::git(repo);
  Status last;  // why the last attempt did not move the notes ref
  for (int attempt = 0; attempt < kMaxNoteAttempts; ++attempt) {
    WTD_ASSIGN_OR_RETURN(CommitPtr parent, NotesCommit(git->repo(), notes_ref, where));
    WTD_ASSIGN_OR_RETURN(std::string text, NoteText(git->repo(), parent.get(), oid, where));
    NoteReceipts note = ParseNote(text);
    if (const Receipt* first = FindIn(note, receipt.worktree, receipt.job, receipt.series))
      return *first;
    WTD_ASSIGN_OR_RETURN(git_oid commit,
                         CommitNote(git->repo(), parent.get(), oid, text, receipt, where));
    int rc = MoveNotesRef(git->repo(), notes_ref, parent.get(), commit);
    if (rc == GIT_ELOCKED) {
      // A lock file left by a writer killed mid-write: removed once stale.
      Result<bool> removed = git->RemoveStaleRefLock(notes_ref, repo.options().stale_ref_lock_ms);
      if (removed.ok() && *removed) continue;
    }
    if (rc == GIT_EMODIFIED || rc == GIT_EEXISTS || rc == GIT_ELOCKED || rc == GIT_ENOTFOUND) {
      last = GitError(rc, where + ": move the notes ref");
      Backoff(attempt);  // another writer moved the notes ref (or holds its lock): again
      continue;
    }
    if (rc < 0) return GitError(rc, where + ": move the notes ref");
    Status s = SyncNotes(git, notes_ref, commit);
    if (!s.ok()) return s.WithContext(where + ": receipt written but not synced");
    return receipt;
  }
  std::string why = "gave up after " + std::to_string(kMaxNoteAttempts) + " attempts: ";
  // A lock file that stayed through every attempt is most likely left by a
  // writer that crashed: say so with its own code, not as a lost race.
  if (last.IsFailedPrecondition()) return Status::FailedPrecondition(why + last.message());
  return Status::Aborted(why + "the notes ref kept changing (" + last.message() + ")");
}

}  // namespace wtd::locks
