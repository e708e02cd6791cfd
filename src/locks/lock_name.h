// Lock names and the refs they map to (docs/design/locks.md).
//
// A lock is named `<worktree-id>/<job>/<sha>` and lives at the ref
// `<locks-root>/<worktree-id>/<job>/<sha>` (locks root by default
// kDefaultLocksRoot). A name that would not give exactly that ref — an empty,
// `.` or `..` part, a `/` in the worktree id or the job, a sha that is not 40
// lowercase hex digits, anything git refuses in a ref name (check-ref-format:
// spaces, `~^:?*[\`, control characters, a part starting with `.` or ending
// in `.lock`, ...) — is refused with InvalidArgument naming the part. Names
// are never rewritten: two different names never share a ref.
//
// Thread-safety: plain functions over values.
#ifndef WTD_LOCKS_LOCK_NAME_H_
#define WTD_LOCKS_LOCK_NAME_H_

#include <string>

#include "wtd/status.h"

namespace wtd::locks {

inline constexpr char kDefaultLocksRoot[] = "refs/wtd/locks";
inline constexpr char kDefaultNotesRef[] = "refs/notes/wtd";

struct LockName {
  std::string worktree_id;  // "main" or a linked worktree's admin name
  std::string job;          // the job file's stem
  std::string sha;          // 40 lowercase hex

  // "<worktree-id>/<job>/<sha>": what `wtctl locks release` takes.
  std::string ToString() const { return worktree_id + "/" + job + "/" + sha; }

  friend bool operator==(const LockName&, const LockName&) = default;
};

// OK when `root` can hold locks: a valid ref name under `refs/` with at
// least two parts (`refs/x`), no empty, `.` or `..` part and no trailing `/`.
Status ValidateLocksRoot(const std::string& root);

// OK when `ref` can hold receipts: a valid ref name under `refs/notes/`
// (`git log --notes=NAME` only finds notes refs there).
Status ValidateNotesRef(const std::string& ref);

// OK when `sha` is 40 lowercase hex digits (what git prints).
Status ValidateSha(const std::string& sha);

// The ref of lock `name` under `root`. InvalidArgument naming the part (or
// the root) that is not acceptable (see above).
Result<std::string> LockRefName(const std::string& root, const LockName& name);

// The lock name of `ref`, which must be `<root>/<worktree-id>/<job>/<sha>`
// with every part valid as above. InvalidArgument otherwise.
Result<LockName> ParseLockRef(const std::string& root, const std::string& ref);

// Parses "<worktree-id>/<job>/<sha>" (the form ToString gives). Validated
// against `root` as LockRefName does.
Result<LockName> ParseLockName(const std::string& root, const std::string& text);

}  // namespace wtd::locks

#endif  // WTD_LOCKS_LOCK_NAME_H_
