#!/usr/bin/env bash
# Installs what is missing, builds and runs the whole test suite:
#   1. Release build with -Werror: every unit, property, corpus and
#      integration test (ctest).
#   2. ASan+UBSan build of the same tests.
#   3. clang-14 thread-safety build of the modules and programs, compile
#      only: -Wthread-safety -Werror proves the GUARDED_BY/REQUIRES/EXCLUDES
#      annotations.
#   4. clang-14 ThreadSanitizer build of the scheduler, exec, server and store
#      tests, which then run under it.
#   5. clang-14 libFuzzer build: each fuzz target runs over its seed corpus
#      and then fuzzes for WTD_FUZZ_SECONDS (default 20) seconds.
# docs/design/concurrency.md describes stages 3 and 4.
# Environment: WTD_PROPERTY_CASES (rapidcheck cases; default 300 in release,
# 60 under ASan),
# WTD_SKIP_INSTALL=1 (do not run the install script), JOBS (default nproc).
set -euo pipefail
source "$(dirname "$0")/common.sh"

step() { printf '\n==== %s (at %d s)\n' "$*" "$SECONDS"; }

step "release build"
# Tests and benchmarks are named explicitly: tools/start.sh configures the
# same directory with them off.
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DWTD_WERROR=ON \
  -DWTD_BUILD_TESTS=ON -DWTD_BUILD_BENCH=ON
cmake --build build/release -j "$jobs"
step "release tests"
ctest --test-dir build/release --output-on-failure -j "$jobs"

step "asan+ubsan build"
cmake -S . -B build/asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWTD_WERROR=ON -DWTD_SANITIZE=ON \
  -DWTD_BUILD_TESTS=ON -DWTD_BUILD_BENCH=OFF
cmake --build build/asan -j "$jobs"
step "asan+ubsan tests"
# The crash-recovery property test searches 300 cases in the release stage;
# here it runs fewer (ASan makes each case several times slower), enough for
# memory errors to show.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions="$root/tools/lsan-suppressions.txt" \
  WTD_PROPERTY_CASES="${WTD_PROPERTY_CASES:-60}" \
  ctest --test-dir build/asan --output-on-failure -j "$jobs"

step "thread-safety analysis build (clang-14, compile only)"
# Every module and program compiled with -Wthread-safety -Werror: a violated
# annotation fails here. The annotations are all in src/ (tests hold none), so
# the tests are not built; nothing runs, so no -g and no optimizer.
cmake -S . -B build/thread-safety -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 \
  -DCMAKE_CXX_COMPILER=clang++-14 -DWTD_WERROR=ON -DWTD_THREAD_SAFETY=ON \
  -DWTD_BUILD_TESTS=OFF -DWTD_BUILD_BENCH=OFF
cmake --build build/thread-safety -j "$jobs"

step "tsan build (clang-14)"
# Only the test binaries of the threaded modules (and wtd-exec, which they
# spawn); each test's TSAN_OPTIONS come from tests/CMakeLists.txt.
tsan_tests=(scheduler_test exec_test server_test store_test)
# The metrics registry (concurrent updates and scrapes) and its io thread.
tsan_tests+=(metrics_test)
cmake -S . -B build/tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DWTD_WERROR=ON -DWTD_TSAN=ON \
  -DWTD_BUILD_TESTS=ON -DWTD_BUILD_BENCH=OFF
cmake --build build/tsan -j "$jobs" --target "${tsan_tests[@]}"
step "tsan tests"
tsan_labels=$(IFS='|'; echo "^(${tsan_tests[*]})\$")
ctest --test-dir build/tsan --output-on-failure -j "$jobs" -L "$tsan_labels"

step "libFuzzer build (clang-14)"
cmake -S . -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++-14 -DWTD_BUILD_FUZZ=ON -DWTD_BUILD_TESTS=OFF \
  -DWTD_BUILD_BENCH=OFF
cmake --build build/fuzz -j "$jobs"
step "fuzzing"
secs=${WTD_FUZZ_SECONDS:-20}
for target in build/fuzz/fuzz/fuzz_*; do
  [[ -x "$target" ]] || continue
  name=$(basename "$target")
  corpus="$root/fuzz/corpus/${name#fuzz_}"
  work=$(mktemp -d)
  "$target" -max_total_time="$secs" -print_final_stats=0 "$work" "$corpus"
  rm -rf "$work"
done
step "all test stages passed"
