// SHA-256 (FIPS 180-4), for keys that must be a fixed-size digest of
// arbitrary bytes (the idempotency records' keys, docs/design/idempotency.md).
// Not for secrets: no attempt is made to run in constant time.
//
// Thread-safety: pure functions.
#ifndef WTD_BASE_SHA256_H_
#define WTD_BASE_SHA256_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace wtd {

// The 32-byte digest of `data`.
std::array<uint8_t, 32> Sha256(std::string_view data);

// The digest of `data` as 64 lowercase hex digits.
std::string Sha256Hex(std::string_view data);

}  // namespace wtd

#endif  // WTD_BASE_SHA256_H_
