// wtd-exec: the supervisor of one attempt of a run, started by wtd for every
// job (src/exec/supervisor.h, docs/design/supervisor.md).
#include "exec/supervisor.h"

int main(int argc, char** argv) { return wtd::SupervisorMain(argc, argv); }
