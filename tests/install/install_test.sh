#!/usr/bin/env bash
# What `cmake --install` puts in place, checked from the installed files:
#   - binaries, systemd units, launchd plist, bash completion, man pages and
#     the example configuration are all there;
#   - the units pass `systemd-analyze verify` without a word of complaint;
#   - the plist loads with python's plistlib and is valid against Apple's
#     plist DTD (systemd/PropertyList-1.0.dtd, through an XML catalog);
#   - both man pages render without warnings, wtd.8 names every option of
#     `wtd --help` and wtctl.1 every command of `wtctl --help`;
#   - the completion scripts parse, and complete commands and flags;
#   - the example configuration starts the installed wtd, as it is and with
#     every commented setting enabled; an unknown key is refused.
#
#   install_test.sh --build DIR --source DIR
# Installs into a temporary DESTDIR, so the paths configured into the units
# (the build's install prefix) hold there.
set -euo pipefail

build= source_dir=
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --source) source_dir=$2; shift 2 ;;
    *) echo "usage: $0 --build DIR --source DIR" >&2; exit 2 ;;
  esac
done
[[ -n $build && -n $source_dir ]] || { echo "usage: $0 --build DIR --source DIR" >&2; exit 2; }

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

tmp=$(mktemp -d /tmp/wtd-install-XXXXXX)
daemon_pid=
cleanup() {
  if [[ -n $daemon_pid ]]; then kill -9 "$daemon_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:[A-Z]*=//p' "$build/CMakeCache.txt")
[[ -n $prefix ]] || { echo "no CMAKE_INSTALL_PREFIX in $build/CMakeCache.txt" >&2; exit 1; }
DESTDIR=$tmp/root cmake --install "$build" >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; echo "FAIL: cmake --install" >&2; exit 1; }
root=$tmp/root$prefix
export PATH=$root/bin:$PATH

# --- Every file.
for f in bin/wtd bin/wtctl bin/wtd-exec \
  lib/systemd/system/wtd.service lib/systemd/system/wtd@.service \
  share/wtd/org.wtd.wtd.plist \
  share/bash-completion/completions/wtctl share/bash-completion/completions/wtd \
  share/man/man8/wtd.8 share/man/man1/wtctl.1 \
  share/doc/wtd/wtd.conf.example; do
  if [[ -s $root/$f ]]; then pass "installed $f"; else fail "missing or empty: $root/$f"; fi
done

# --- systemd units. verify checks that ExecStart's binary exists: the units
# name $prefix/bin, which is under DESTDIR here, so a copy points there.
if command -v systemd-analyze >/dev/null; then
  mkdir "$tmp/units"
  for u in wtd.service wtd@.service; do
    sed "s#$prefix/bin/#$root/bin/#g" "$root/lib/systemd/system/$u" >"$tmp/units/$u"
  done
  grep -q "^ExecStart=$root/bin/wtd " "$tmp/units/wtd.service" ||
    fail "wtd.service: ExecStart does not name $prefix/bin/wtd"
  for u in wtd.service wtd@srv-git-app.service; do
    # A template is verified as an instance; its file is found on the unit path.
    out=$(cd "$tmp/units" && MANPATH=$root/share/man SYSTEMD_UNIT_PATH=$tmp/units: \
      systemd-analyze verify "$u" 2>&1) && rc=0 || rc=$?
    if [[ $rc -eq 0 && -z $out ]]; then
      pass "systemd-analyze verify $u"
    else
      fail "systemd-analyze verify $u (exit $rc): $out"
    fi
  done
else
  echo "SKIP: systemd-analyze is not installed (tools/install-deps.sh installs it): units not verified"
fi

# --- launchd plist.
plist=$root/share/wtd/org.wtd.wtd.plist
if out=$(python3 - "$plist" "$prefix" <<'EOF' 2>&1
import plistlib, sys
with open(sys.argv[1], 'rb') as f:
    p = plistlib.load(f)
prefix = sys.argv[2]
assert p['Label'] == 'org.wtd.wtd', p['Label']
assert p['ProgramArguments'][0] == prefix + '/bin/wtd', p['ProgramArguments']
assert '--daemonize' not in p['ProgramArguments'], 'launchd needs a foreground process'
assert p['KeepAlive'] == {'SuccessfulExit': False}, p['KeepAlive']
assert p['StandardOutPath'] and p['StandardErrorPath']
assert isinstance(p['ExitTimeOut'], int)
EOF
); then pass "plistlib loads the plist"; else fail "plistlib: $out"; fi
cat >"$tmp/catalog.xml" <<EOF
<?xml version="1.0"?>
<catalog xmlns="urn:oasis:names:tc:entity:xmlns:xml:catalog">
  <public publicId="-//Apple//DTD PLIST 1.0//EN" uri="file://$source_dir/systemd/PropertyList-1.0.dtd"/>
</catalog>
EOF
if out=$(XML_CATALOG_FILES=$tmp/catalog.xml xmllint --noout --nonet --valid "$plist" 2>&1) &&
  [[ -z $out ]]; then
  pass "the plist is valid against Apple's plist DTD"
else
  fail "xmllint --valid $plist: $out"
fi

# --- Man pages: render without warnings; every option and command named.
for page in share/man/man8/wtd.8 share/man/man1/wtctl.1; do
  warnings=$(groff -man -Tutf8 -ww -z "$root/$page" 2>&1)
  [[ -z $warnings ]] || fail "groff warns about $page: $warnings"
  rendered=$(MANWIDTH=80 man -l "$root/$page" 2>"$tmp/man.err")
  if [[ -s $tmp/man.err || -z $rendered ]]; then
    fail "man -l $page: $(cat "$tmp/man.err")"
  else
    pass "man -l renders $page"
  fi
done
# In the roff source, a dash is "\-".
wtd8=$(sed 's/\\-/-/g' "$root/share/man/man8/wtd.8")
options=$(wtd --help | grep -o -- '^  \(-h \[ \)\?--[a-z][a-z-]*' | grep -o -- '--[a-z-]*')
[[ $(wc -l <<<"$options") -ge 20 ]] || fail "only $(wc -l <<<"$options") options read from wtd --help"
missing=0
for o in $options; do
  grep -q -- "\\\\fB$o\\\\fR" <<<"$wtd8" || { fail "wtd.8 does not name $o"; missing=1; }
done
[[ $missing -eq 0 ]] && pass "wtd.8 names all $(wc -l <<<"$options") options of wtd --help"
wtctl1=$(sed 's/\\-/-/g' "$root/share/man/man1/wtctl.1")
commands=$(wtctl --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }')
[[ $(wc -l <<<"$commands") -ge 8 ]] || fail "only $(wc -l <<<"$commands") commands read from wtctl --help"
missing=0
for c in $commands; do
  grep -q "^\\\\fB$c\\b" <<<"$wtctl1" || { fail "wtctl.1 does not name command $c"; missing=1; }
done
[[ $missing -eq 0 ]] && pass "wtctl.1 names all $(wc -l <<<"$commands") commands of wtctl --help"

# --- bash completion.
completions=$root/share/bash-completion/completions
for c in wtctl wtd; do
  if bash -n "$completions/$c"; then pass "bash -n $c completion"; else fail "bash -n $c completion"; fi
done
# complete WORDS...: what the completion function offers for the last word.
complete_words() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
           "_${COMP_WORDS[0]}"; printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$completions/$1" "$@"
}
expect_completion() {
  local want=$1; shift
  local got
  got=$(complete_words "$@" | tr '\n' ' ')
  if [[ $got == "$want" ]]; then pass "completes '$*' to $want"; else fail "'$*' completes to '$got', not '$want'"; fi
}
# Every command of wtctl --help starting with "st".
want=$(grep '^st' <<<"$commands" | sort | tr '\n' ' ')
[[ $want == *"status "* && $want == *"stop "* ]] || fail "wtctl --help has no status or stop: $commands"
expect_completion "$want" wtctl st
expect_completion "--limit " wtctl --json runs --li
expect_completion "--follow " wtctl logs 7 --fo
expect_completion "--poll-ms " wtd --poll
expect_completion "json text " wtd --log-format ""

# --- The example configuration, on the installed wtd.
git init -q -b main "$tmp/repo"
git -C "$tmp/repo" -c user.name=t -c user.email=t@t commit -q --allow-empty -m first
example=$root/share/doc/wtd/wtd.conf.example
# All its commented settings enabled (`#name = value` lines).
sed 's/^#\([a-z][a-z-]* = \)/\1/' "$example" >"$tmp/all.conf"
[[ $(grep -c '^[a-z]' "$tmp/all.conf") -ge 20 ]] || fail "the example sets fewer than 20 options"
# start_with CONF: wtd on the test repository and state dir, ready and
# stopped again; what the file names outside them is overridden.
start_with() {
  local conf=$1 state=$tmp/state-$RANDOM
  wtd --config "$conf" --repo "$tmp/repo" --state-dir "$state" --socket "$state/wtd.sock" \
    --pid-file "$state/wtd.pid" --exec-shim "$root/bin/wtd-exec" >"$tmp/wtd.log" 2>&1 &
  daemon_pid=$!
  local i
  for ((i = 0; i < 600; i++)); do
    if wtctl --state-dir "$state" status >/dev/null 2>&1; then break; fi
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! wtctl --state-dir "$state" status >/dev/null 2>&1; then
    fail "wtd --config $conf did not start: $(cat "$tmp/wtd.log")"
    kill -9 "$daemon_pid" 2>/dev/null || true
    daemon_pid=
    return
  fi
  wtctl --state-dir "$state" stop >/dev/null
  local rc=0
  wait "$daemon_pid" || rc=$?
  daemon_pid=
  if [[ $rc -eq 0 ]]; then pass "wtd starts and stops with $(basename "$conf")"; else fail "wtd exited $rc"; fi
}
start_with "$example"
start_with "$tmp/all.conf"
# A key wtd does not know is refused (exit 2), naming it.
printf 'no-such-option = 1\n' | cat "$example" - >"$tmp/bad.conf"
rc=0
out=$(wtd --config "$tmp/bad.conf" --repo "$tmp/repo" --state-dir "$tmp/state-bad" 2>&1) || rc=$?
if [[ $rc -eq 2 && $out == *no-such-option* ]]; then
  pass "an unknown key is refused"
else
  fail "an unknown key: exit $rc, $out"
fi

if [[ $failures -gt 0 ]]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all install checks passed"
