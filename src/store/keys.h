// Key encodings for the state store's column families (docs/design/store.md).
// Numeric keys are big-endian so that RocksDB's bytewise order is numeric
// order; composite keys join their parts with NUL, which no part may contain.
#ifndef WTD_STORE_KEYS_H_
#define WTD_STORE_KEYS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/records.h"
#include "wtd/status.h"

namespace wtd {

std::string EncodeU64Key(uint64_t v);
// Corruption when `key` is not exactly 8 bytes.
Result<uint64_t> DecodeU64Key(std::string_view key);

// run_keys: repo \0 worktree \0 job \0 sha, then \0 series (decimal) for a
// series > 0 (series 0, the poller's runs, keeps the four-part key).
std::string EncodeRunKey(const RunKey& k);
Result<RunKey> DecodeRunKey(std::string_view key);

// cursors: repo \0 worktree \0 branch
std::string EncodeCursorKey(std::string_view repo, std::string_view worktree,
                            std::string_view branch);
// Prefix of every cursor of one worktree (repo \0 worktree \0).
std::string CursorKeyPrefix(std::string_view repo, std::string_view worktree);
// Prefix of every cursor of one repository (repo \0).
std::string CursorRepoPrefix(std::string_view repo);

// The lock name of a run: <worktree-id>/<job>/<sha>.
std::string LockName(const RunKey& k);
// locks: repo \0 lock name
std::string EncodeLeaseKey(std::string_view repo, std::string_view name);

// Splits a NUL-joined key.
std::vector<std::string_view> SplitKey(std::string_view key);

// InvalidArgument when a key part is empty or holds NUL.
Status CheckKeyPart(std::string_view what, std::string_view part);

}  // namespace wtd

#endif  // WTD_STORE_KEYS_H_
