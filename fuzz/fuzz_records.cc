// libFuzzer target: the record envelope, the cereal payload decoders and the
// key decoders of src/store must reject any input cleanly (never crash, never
// allocate without bound), and whatever decodes must survive a re-encode:
//   r = Decode(in) ok  =>  Decode(Encode(r)) == r  and  Encode is stable.
// The input is tried both as a whole stored value (envelope + payload, so the
// CRC normally rejects it) and as a bare payload sealed under every record
// kind, which takes the fuzzer past the CRC into cereal.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "store/keys.h"
#include "store/records.h"

namespace wtd {
namespace {

[[noreturn]] void Fail(const char* what) {
  fprintf(stderr, "fuzz_records: round trip broken: %s\n", what);
  abort();
}

// Checks the round trip of one decoder/encoder pair on `value`.
template <typename T, typename DecodeFn, typename EncodeFn>
void RoundTrip(const char* what, std::string_view value, DecodeFn decode, EncodeFn encode) {
  Result<T> first = decode(value);
  if (!first.ok()) return;
  std::string encoded = encode(*first);
  Result<T> second = decode(encoded);
  if (!second.ok()) Fail(what);
  if (!(*second == *first)) Fail(what);
  if (encode(*second) != encoded) Fail(what);
}

// Decodes `in` with every decoder: as a stored value when `seal` is
// false, else as a payload sealed under each decoder's own kind.
void DecodeAll(std::string_view in, bool seal) {
  auto as = [&](RecordKind kind) { return seal ? SealRecord(kind, in) : std::string(in); };
  RoundTrip<Run>("run", as(RecordKind::kRun), DecodeRun, EncodeRun);
  RoundTrip<Cursor>("cursor", as(RecordKind::kCursor), DecodeCursor, EncodeCursor);
  RoundTrip<Lease>("lease", as(RecordKind::kLease), DecodeLease, EncodeLease);
  RoundTrip<IdemRecord>("idem", as(RecordKind::kIdem), DecodeIdem, EncodeIdem);
  RoundTrip<Event>("event", as(RecordKind::kEvent), DecodeEvent, EncodeEvent);
  RoundTrip<WatchedRepos>("watched repositories", as(RecordKind::kWatchedRepos), DecodeWatchedRepos,
                          EncodeWatchedRepos);
  RoundTrip<Slot>("slot", as(RecordKind::kSlot), DecodeSlot, EncodeSlot);
  RoundTrip<RunStats>("run stats", as(RecordKind::kRunStats), DecodeRunStats, EncodeRunStats);
}

void CheckEnvelope(std::string_view value) {
  for (uint8_t k = 0; k <= 8; ++k) {
    auto kind = static_cast<RecordKind>(k);
    Result<std::string_view> payload = UnsealRecord(kind, value);
    if (!payload.ok()) continue;
    // A payload that unseals is a suffix of the value and re-seals to it.
    if (payload->data() + payload->size() != value.data() + value.size()) Fail("unseal bounds");
    if (SealRecord(kind, *payload) != value) Fail("reseal");
  }
}

void CheckKeys(std::string_view key) {
  Result<uint64_t> n = DecodeU64Key(key);
  if (n.ok() && EncodeU64Key(*n) != key) Fail("u64 key");
  Result<RunKey> rk = DecodeRunKey(key);
  if (rk.ok() && EncodeRunKey(*rk) != key) Fail("run key");
  std::vector<std::string_view> parts = SplitKey(key);
  std::string joined;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) joined.push_back('\0');
    joined.append(parts[i]);
  }
  if (joined != key) Fail("split key");
}

}  // namespace
}  // namespace wtd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  wtd::DecodeAll(in, /*seal=*/false);
  wtd::DecodeAll(in, /*seal=*/true);
  wtd::CheckEnvelope(in);
  wtd::CheckKeys(in);
  return 0;
}
