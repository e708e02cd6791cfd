// Random identifiers from the kernel's generator (getrandom(2)).
//
// Thread-safety: safe to call from any thread.
#ifndef WTD_BASE_RANDOM_H_
#define WTD_BASE_RANDOM_H_

#include <cstddef>
#include <string>

#include "wtd/status.h"

namespace wtd {

// `bytes` random bytes as 2 * bytes lowercase hex digits. IOError naming
// getrandom(2) when the kernel cannot supply them.
Result<std::string> RandomHex(size_t bytes);

}  // namespace wtd

#endif  // WTD_BASE_RANDOM_H_
