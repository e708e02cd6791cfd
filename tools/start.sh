#!/usr/bin/env bash
# Installs what is missing, builds wtd (Release) and starts it, detached, on
# the repository this script lives in, with the default state directory
# ($WTD_STATE_DIR, else $XDG_STATE_HOME/wtd, else ~/.local/state/wtd).
# Extra arguments go to wtd (e.g. --poll-ms 500). Stop it with
#   build/release/tools/wtctl stop
set -euo pipefail
source "$(dirname "$0")/common.sh"
repo=$root
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DWTD_BUILD_TESTS=OFF \
  -DWTD_BUILD_BENCH=OFF >/dev/null
cmake --build build/release -j "$jobs" --target wtd wtctl wtd-exec
build/release/tools/wtd --repo "$repo" --daemonize "$@"
# Show the status once the first poll has listed the worktrees (at most 5 s).
for _ in $(seq 50); do
  build/release/tools/wtctl --json status 2>/dev/null | grep -q '"last_tick": "' && break
  sleep 0.1
done
build/release/tools/wtctl status
echo
echo "wtd is running on $repo. Try: build/release/tools/wtctl runs"
echo "Stop it with: build/release/tools/wtctl stop"
