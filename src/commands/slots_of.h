// The worktree slots a command works on (worktree, recover): the daemon's
// when it answers, else a WorktreeSlots made over the store wtctl opened
// (docs/design/worktrees.md, "Operators").
#ifndef WTD_COMMANDS_SLOTS_OF_H_
#define WTD_COMMANDS_SLOTS_OF_H_

#include <memory>

#include "commands/command.h"
#include "worktrees/slots.h"

namespace wtd {

// ctx.slots, or slots over ctx's store with the root <state-dir>/worktrees,
// kept alive by *own.
WorktreeSlots* SlotsOf(const CommandContext& ctx, std::unique_ptr<SlotsOnStore>* own);

}  // namespace wtd

#endif  // WTD_COMMANDS_SLOTS_OF_H_
