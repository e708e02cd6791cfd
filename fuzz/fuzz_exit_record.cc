// libFuzzer target: the files a run's supervisor leaves (src/exec/
// exit_record.h), which the daemon reads at every job's end and at start:
// whatever the bytes, decoding never crashes, and what decodes encodes to a
// text that decodes to the same record (a job group to the same text).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "exec/exit_record.h"

namespace wtd {
namespace {

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_exit_record: %s\n", what);
  abort();
}

bool Same(const ExitRecord& a, const ExitRecord& b) {
  const AttemptOutcome& x = a.outcome;
  const AttemptOutcome& y = b.outcome;
  return a.run_id == b.run_id && a.attempt == b.attempt && a.started_at_ms == b.started_at_ms &&
         a.ended_at_ms == b.ended_at_ms && x.exit_code == y.exit_code &&
         x.term_signal == y.term_signal && x.timed_out == y.timed_out && x.stopped == y.stopped &&
         x.log_bytes == y.log_bytes && x.log_truncated == y.log_truncated &&
         x.duration_ms == y.duration_ms;
}

void Check(std::string_view in) {
  Result<ExitRecord> r = DecodeExitRecord(in);
  if (r.ok()) {
    Result<ExitRecord> again = DecodeExitRecord(EncodeExitRecord(*r));
    if (!again.ok() || !Same(*r, *again)) Fail("exit record does not round-trip");
  }
  Result<JobGroup> g = DecodeJobGroup(in);
  if (g.ok() && EncodeJobGroup(*g) != in) Fail("job group does not round-trip to its text");
}

}  // namespace
}  // namespace wtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  wtd::Check(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
