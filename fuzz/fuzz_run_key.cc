// libFuzzer target: the NUL-joined composite keys of src/store. The input is
// split on '\n' into key parts; parts that CheckKeyPart accepts must encode
// to a key that decodes to the same parts, and a cursor key must start with
// its worktree's prefix. Parts holding NUL must be refused.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/keys.h"

namespace wtd {
namespace {

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_run_key: %s\n", what);
  abort();
}

std::vector<std::string> Fields(std::string_view in, size_t count) {
  std::vector<std::string> out(count);
  size_t i = 0;
  for (char c : in) {
    if (c == '\n' && i + 1 < count) {
      ++i;
    } else {
      out[i].push_back(c);
    }
  }
  return out;
}

bool AllValid(const std::vector<std::string>& parts) {
  bool valid = true;
  for (const std::string& p : parts) {
    bool accepted = CheckKeyPart("part", p).ok();
    bool expected = !p.empty() && p.find('\0') == std::string::npos;
    if (accepted != expected) Fail("CheckKeyPart disagrees with its contract");
    valid = valid && accepted;
  }
  return valid;
}

void CheckRunKey(std::string_view in) {
  std::vector<std::string> f = Fields(in, 4);
  if (!AllValid(f)) return;
  RunKey key{f[0], f[1], f[2], f[3]};
  Result<RunKey> back = DecodeRunKey(EncodeRunKey(key));
  if (!back.ok() || !(*back == key)) Fail("run key does not round-trip");
  // An attempt series (taken from the input's bytes) round-trips too.
  uint32_t series = 0;
  for (char c : in) series = series * 31 + static_cast<unsigned char>(c);
  key.series = series;
  back = DecodeRunKey(EncodeRunKey(key));
  if (!back.ok() || !(*back == key)) Fail("run key with a series does not round-trip");
  // Whatever the bytes, decoding never crashes.
  DecodeRunKey(in).status().IgnoreError();
}

void CheckCursorKey(std::string_view in) {
  std::vector<std::string> f = Fields(in, 3);
  if (!AllValid(f)) return;
  std::string key = EncodeCursorKey(f[0], f[1], f[2]);
  std::string prefix = CursorKeyPrefix(f[0], f[1]);
  if (key.compare(0, prefix.size(), prefix) != 0) Fail("cursor key lacks its prefix");
  std::vector<std::string_view> parts = SplitKey(key);
  if (parts.size() != 3 || parts[0] != f[0] || parts[1] != f[1] || parts[2] != f[2]) {
    Fail("cursor key does not split into its parts");
  }
}

}  // namespace
}  // namespace wtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  wtd::CheckRunKey(in);
  wtd::CheckCursorKey(in);
  return 0;
}
