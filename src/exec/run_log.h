// RunLog: one attempt's writer of a run's log, `<state-dir>/logs/runs/<id>.log`,
// which holds every attempt of the run. Used by the supervisor (wtd-exec),
// which copies its job's output here.
//
// A later attempt appends a header line "[wtd: attempt N]" and then its
// output. `cap` bounds the whole file, all attempts together: output beyond
// what is left is dropped, and one line "[wtd: log truncated at CAP bytes]" is
// appended once per run (an attempt whose log already ends with it writes
// nothing at all). So the file never exceeds the cap plus that line.
//
// Thread-safety: one thread.
#ifndef WTD_EXEC_RUN_LOG_H_
#define WTD_EXEC_RUN_LOG_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "wtd/status.h"

namespace wtd {

class RunLog {
 public:
  // Takes `fd`, the log opened for appending (closed by Finish or the
  // destructor); `path` names it in errors.
  RunLog(int fd, std::string path, uint64_t cap);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  // Reads the end of the log as earlier attempts left it: its size, whether
  // it ends with a newline and with the truncation marker. FailedPrecondition
  // when the file is not a regular file.
  Status Open();
  // Writes the "[wtd: attempt N]" line of attempt `attempt` > 1, if it fits.
  void WriteAttemptHeader(uint32_t attempt);
  // Appends output within the cap.
  void Append(const char* data, size_t size);
  // Appends the truncation marker when output was dropped, fsyncs, measures
  // and closes the log.
  void Finish();

  uint64_t bytes() const { return bytes_; }
  // The cap cut the run's output, in this attempt or an earlier one.
  bool truncated() const { return truncated_ || marked_; }
  // The first bytes of this attempt's output (to recognise an exec failure).
  const std::string& head() const { return head_; }

 private:
  size_t Write(const char* data, size_t size);

  int fd_;
  const std::string path_;
  const uint64_t cap_;
  uint64_t bytes_ = 0;      // size of the log file
  bool truncated_ = false;  // this attempt lost output (or its header) to the cap
  bool marked_ = false;     // the log already ends with the truncation marker
  bool full_ = false;       // nothing more is written this attempt
  bool ends_with_newline_ = true;
  std::string head_;
};

}  // namespace wtd

#endif  // WTD_EXEC_RUN_LOG_H_
