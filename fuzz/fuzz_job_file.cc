// libFuzzer target: job files as committed in a repository. ParseJobSpec must
// accept or refuse any bytes with a Status naming the file (never crash or
// hang), and an accepted spec must compile (or refuse its regex with a Status)
// and answer its matchers on inputs taken from the spec itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "jobs/job_spec.h"

namespace {

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_job_file: %s\n", what);
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string file = "jobs/fuzz.job";
  wtd::Result<wtd::JobSpec> spec = wtd::ParseJobSpec(file, in);
  if (!spec.ok()) {
    if (spec.status().message().find(file) == std::string::npos) {
      Fail("error does not name the file");
    }
    return 0;
  }
  std::string subject(in.substr(0, 64));
  auto matcher = wtd::JobMatcher::Compile(*spec);
  if (!matcher.ok()) return 0;
  const wtd::JobMatcher& m = **matcher;
  for (const std::string& b : m.spec().branches) (void)m.MatchesBranch(b);
  (void)m.MatchesBranch(subject);
  (void)m.MatchesPaths(m.spec().paths);
  (void)m.MatchesPaths({subject});
  (void)m.MatchesMessage(subject);
  return 0;
}
