// wtd: the daemon. All the work is in src/daemon.
#include "daemon/daemon.h"

int main(int argc, char** argv) { return wtd::DaemonMain(argc, argv); }
