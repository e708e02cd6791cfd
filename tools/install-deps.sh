#!/usr/bin/env bash
# Installs every Debian 12 package wtd needs to build, test and fuzz.
# Safe to re-run: apt-get install is a no-op for what is already present.
# This is the only place set-up lives; CI and the README call it.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  librocksdb-dev libgit2-dev
  libboost-dev libboost-program-options-dev
  libcereal-dev libspdlog-dev libfmt-dev
  libgtest-dev libgmock-dev librapidcheck-dev
  nlohmann-json3-dev libsystemd-dev
  clang-14 libclang-rt-14-dev clang-format
  procps
  # tests/install: systemd-analyze verify on the units, the launchd plist
  # through python's plistlib and xmllint, the man pages through man and groff.
  systemd libxml2-utils python3 man-db groff-base
  # tests/integration/metrics_test.cc: promtool checks the scraped metrics
  # (skipped without it). The package's postinst asks to start its server;
  # in a container policy-rc.d denies that and nothing starts.
  prometheus
)

if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
else
  sudo=
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
