// wtctl: the operator CLI. All the work is in src/cli.
#include "cli/wtctl.h"

int main(int argc, char** argv) { return wtd::WtctlMain(argc, argv); }
