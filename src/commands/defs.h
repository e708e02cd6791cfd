// The definition of each command, one function per file of this module;
// registry.cc lists them in AllCommands().
#ifndef WTD_COMMANDS_DEFS_H_
#define WTD_COMMANDS_DEFS_H_

#include "commands/command.h"

namespace wtd {

const CommandDef& StatusCommand();    // status.cc
const CommandDef& RunsCommand();      // runs.cc
const CommandDef& ShowCommand();      // show.cc
const CommandDef& LogsCommand();      // logs.cc
const CommandDef& EventsCommand();    // events.cc
const CommandDef& StopCommand();      // lifecycle.cc
const CommandDef& PauseCommand();     // lifecycle.cc
const CommandDef& ResumeCommand();    // lifecycle.cc
const CommandDef& ReloadCommand();    // lifecycle.cc
const CommandDef& RestartCommand();   // lifecycle.cc
const CommandDef& LocksCommand();     // locks.cc
const CommandDef& RecoverCommand();   // recover.cc
const CommandDef& WorktreeCommand();  // worktree.cc
const CommandDef& StatsCommand();     // stats.cc

const CommandDef& TriggerCommand();  // trigger.cc
const CommandDef& CancelCommand();   // cancel.cc
const CommandDef& JobsCommand();     // jobs.cc
const CommandDef& GcCommand();       // gc.cc

}  // namespace wtd

#endif  // WTD_COMMANDS_DEFS_H_
