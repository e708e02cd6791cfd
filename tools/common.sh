# Sourced by tools/start.sh and tools/test.sh: go to the repository root,
# set $root and $jobs, and install what is missing unless
# WTD_SKIP_INSTALL=1.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
jobs=${JOBS:-$(nproc)}
if [[ "${WTD_SKIP_INSTALL:-0}" != 1 ]]; then
  bash tools/install-deps.sh
fi
