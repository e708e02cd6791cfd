#!/usr/bin/env bash
# Torture test: commits continuously to a throw-away repository while
# killing wtd with kill -9 at random moments, sometimes restarting it with
# WTD_CRASH_AT=<random crash point>:<random nth> or stopping it with SIGTERM,
# and restarting it after every death. At the end it starts wtd normally,
# waits until every commit has a terminal run, and checks:
#   - exactly one recorded run per (worktree, job, sha), for every commit;
#   - every run succeeded;
#   - every commit's sha is in each job's effect file (at least once), and
#     a job executed again for a sha only when that job was itself stopped
#     (SIGTERM, from a stop of wtd) after its effect: the supervisor keeps a
#     job alive across kill -9 and crash points of wtd, so those repeat none;
#   - no lock ref is left, and each (job, sha) has one receipt in the notes;
#   - wtd never exited with an unexpected status (startup refusal, sanitizer
#     report, crash other than the armed crash point) and stops cleanly.
# Prints a summary; exits 1 with a clear message on any violation (the work
# directory is then kept for inspection), 2 on a usage error.
#
#   tests/torture.sh [--seconds N] [--wtd PATH] [--wtctl PATH] [--seed N]
#                    [--settle-s N] [--keep]
#
# Defaults: 60 seconds, build/release/tools/{wtd,wtctl}, a random seed
# (printed, so a run can be repeated with --seed), 300 s to settle.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
seconds=60
wtd=$root/build/release/tools/wtd
wtctl=$root/build/release/tools/wtctl
seed=$$
settle_s=300
keep=0

usage() {
  sed -n '/^#   tests\/torture.sh/,/^#                    \[--settle-s/p' "$0" | sed 's/^# *//' >&2
  exit 2
}
while (($#)); do
  case $1 in
    --seconds) seconds=${2:?--seconds needs a value}; shift 2 ;;
    --wtd) wtd=${2:?--wtd needs a value}; shift 2 ;;
    --wtctl) wtctl=${2:?--wtctl needs a value}; shift 2 ;;
    --seed) seed=${2:?--seed needs a value}; shift 2 ;;
    --settle-s) settle_s=${2:?--settle-s needs a value}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h | --help) usage ;;
    *) echo "torture: unknown argument $1" >&2; usage ;;
  esac
done
[[ $seconds =~ ^[0-9]+$ && $settle_s =~ ^[0-9]+$ && $seed =~ ^[0-9]+$ ]] || usage
for bin in "$wtd" "$wtctl"; do
  [[ -x $bin ]] || { echo "torture: $bin is not an executable (build first)" >&2; exit 2; }
done
RANDOM=$seed

# The crash points, in lifecycle order, from the source when it is there:
# the list kCrashPointNames only (the wedge points after it stop a thread,
# not the process, and a wedged daemon never stops).
mapfile -t points < <(sed -n '/kCrashPointNames\[\]/,/^};/s/^ *"\([a-z_]*\)", *\/\/.*/\1/p' \
  "$root/src/base/crash_point.cc" 2>/dev/null || true)
if ((${#points[@]} == 0)); then
  points=(after_store_open after_enqueue_commit after_lease_commit after_ready_commit after_spawn
    before_running_commit after_running_commit after_release before_outcome_commit
    after_outcome_commit during_recovery during_shutdown)
fi

work=$(mktemp -d /tmp/wtd-torture-XXXXXX)
repo=$work/repo
state=$work/s
log=$work/wtd.log
jobs=(quick slow)
pid=
failed=0

cleanup() {
  if [[ -n $pid ]] && alive; then kill -9 "$pid" 2>/dev/null || true; fi
  if ((failed || keep)); then
    echo "torture: work directory kept: $work (wtd output in $log)" >&2
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

fail() {
  failed=1
  echo "torture: FAILED: $*" >&2
  echo "torture: last lines of $log:" >&2
  tail -n 30 "$log" >&2 || true
  exit 1
}

export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
unset WTD_CRASH_AT WTD_STATE_DIR
git() { command git -C "$repo" "$@"; }

mkdir -p "$repo/jobs"
git init -q -b main
git config user.name "wtd torture"
git config user.email torture@example.com
git config commit.gpgsign false
# Generous attempts: interrupted attempts count against max_attempts + 3, and
# a run may be interrupted many times here; the check is exactly-once records.
for j in "${jobs[@]}"; do
  extra=
  [[ $j == slow ]] && extra='; sleep 0.2'
  # Each job checks it runs in a tree at exactly its commit, then leaves an
  # untracked file behind for the next run in that worktree not to see.
  # A job that is itself signalled (SIGTERM: a stop of wtd reaching it
  # through its supervisor) says so in stopped-JOB, with 1 when its effect
  # line may already be written (e is set before the line, and a trap runs
  # between commands, so it never says 0 after the line). Only such a job may
  # be executed again for its sha. Its foreground commands (git, sleep) are
  # in its process group and get the SIGTERM too, so none delays the trap; a
  # git killed meanwhile makes the job exit 1 rather than call its tree dirty.
  # shellcheck disable=SC2016  # $WTD_SHA is for the job's shell
  printf '%s%s%s%s%s\nmax_attempts = 20\nretry_backoff_s = 0\n' \
    "run = e=0; trap 'echo \"\$WTD_SHA \$e\" >> $work/stopped-$j; exit 143' TERM; " \
    'head=$(git rev-parse HEAD) && st=$(git status --porcelain) || exit 1; ' \
    'if [ "$head" = "$WTD_SHA" ] && [ -z "$st" ]; ' \
    "then e=1; echo \"\$WTD_SHA\" >> $work/effect-$j; " \
    "else echo \"\$WTD_SHA\" >> $work/dirty; exit 1; fi; touch left-behind$extra" \
    > "$repo/jobs/$j.job"
done
git add -A
git commit -q -m "torture jobs"

commits=1
commit() {
  echo "$commits $RANDOM" > "$repo/file-$((commits % 7))"
  git add -A
  git commit -q -m "commit $commits"
  commits=$((commits + 1))
}

alive() {
  local s
  s=$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $s != Z ]]
}

starts=0 kills=0 crashes=0 stops=0 armed=
# start [SPEC]: starts wtd in the background, with WTD_CRASH_AT=SPEC if given.
# Half of the daemons have no shutdown grace, so that a SIGTERM stops the
# jobs then running (and they are run again), the others a second of it.
# Every commit must run: a backlog that grows while daemon after daemon is
# killed in recovery must not reach the backfill limit (which skips the
# oldest commits).
start() {
  armed=${1:-}
  local grace=$((RANDOM % 2))
  echo "==== torture: start $((starts + 1))${armed:+ WTD_CRASH_AT=$armed}, grace $grace s" >> "$log"
  if [[ -n $armed ]]; then
    WTD_CRASH_AT=$armed "$wtd" --repo "$repo" --state-dir "$state" --poll-ms 100 \
      --concurrency 2 --lookback-s 86400 --max-backfill 1000000 \
      --shutdown-grace-s "$grace" >> "$log" 2>&1 &
  else
    "$wtd" --repo "$repo" --state-dir "$state" --poll-ms 100 --concurrency 2 \
      --lookback-s 86400 --max-backfill 1000000 --shutdown-grace-s "$grace" \
      >> "$log" 2>&1 &
  fi
  pid=$!
  starts=$((starts + 1))
}

# reap WHY OK_CODES...: waits for the dead daemon and checks its exit status.
reap() {
  local why=$1 code=0
  shift
  { wait "$pid"; } 2> /dev/null || code=$?  # (no "Killed" job notice)
  ((code == 86)) && crashes=$((crashes + 1))
  for ok in "$@"; do ((code == ok)) && return 0; done
  fail "wtd pid $pid ($why${armed:+, WTD_CRASH_AT=$armed}) exited with status $code"
}

# restart: a new daemon, a third of the time with a random crash point armed.
restart() {
  if ((RANDOM % 3 == 0)); then
    start "${points[RANDOM % ${#points[@]}]}:$((RANDOM % 3 + 1))"
  else
    start
  fi
}

pause_random() { sleep "$(printf '0.%03d' $((RANDOM % 400)))"; }  # 0 to 0.4 s

echo "torture: $seconds s, seed $seed, ${#points[@]} crash points, work dir $work"
start
end=$((SECONDS + seconds))
while ((SECONDS < end)); do
  for ((i = RANDOM % 4; i > 0; i--)); do commit; done
  pause_random
  if ! alive; then
    # Died on its own: only an armed crash point may do that.
    reap "died on its own" 86
    restart
    continue
  fi
  r=$((RANDOM % 10))
  if ((r < 4)); then
    kill -9 "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    reap "kill -9" 137 86
    restart
  elif ((r == 4)) && "$wtctl" --state-dir "$state" status > /dev/null 2>&1; then
    # A graceful stop while it runs (during_shutdown may be armed).
    kill -TERM "$pid" 2>/dev/null || true
    t=0
    while alive && ((t++ < 600)); do sleep 0.1; done
    ! alive || fail "wtd pid $pid did not stop within 60 s of SIGTERM"
    stops=$((stops + 1))
    reap "SIGTERM" 0 86 143
    restart
  fi
done
if alive; then
  kill -9 "$pid" 2>/dev/null || true
  kills=$((kills + 1))
  reap "final kill -9" 137 86
else
  reap "died on its own" 86
fi

# Settle: a clean daemon runs whatever is left.
start
git rev-list main | sort > "$work/shas"
for j in "${jobs[@]}"; do sed "s/^/main\t$j\t/" "$work/shas"; done | sort > "$work/expected"

# runs_tsv: id, worktree, job, sha, state, attempt per run, from the stable
# pretty-printed `wtctl --json runs` (one "key": value per line).
runs_tsv() {
  "$wtctl" --state-dir "$state" --json runs --limit 0 > "$work/runs.json" 2> /dev/null || return 1
  awk '
    /^  \{/ { split("", f); next }
    /^    "[a-z_]+": / {
      key = $1; gsub(/[":]/, "", key)
      val = $0; sub(/^    "[a-z_]+": /, "", val); sub(/,$/, "", val); gsub(/^"|"$/, "", val)
      f[key] = val
    }
    /^  \}/ { print f["id"] "\t" f["worktree"] "\t" f["job"] "\t" f["sha"] "\t" f["state"] "\t" f["attempt"] }
  ' "$work/runs.json" > "$work/runs.tsv"
}

settled() {
  alive || fail "the final wtd (no crash point) exited"
  runs_tsv || return 1
  awk -F'\t' '$5 !~ /^(succeeded|failed|timed_out|cancelled)$/ { bad = 1 } END { exit bad }' \
    "$work/runs.tsv" || return 1
  cut -f2-4 "$work/runs.tsv" | sort -u > "$work/have"
  [[ -z $(comm -23 "$work/expected" "$work/have") ]] || return 1
  # A lock ref whose delete met a dead writer's ref lock file is released
  # once that file is stale (docs/design/locks.md): part of settling.
  [[ -z $(git -C "$repo" for-each-ref refs/wtd/locks) ]]
}
for ((t = 0; t < settle_s * 10; t++)); do
  settled && break
  sleep 0.1
done
settled || fail "runs did not settle within $settle_s s: $(comm -23 "$work/expected" "$work/have" |
  wc -l) (worktree, job, sha) without a run, non-terminal: $(awk -F'\t' \
  '$5 !~ /^(succeeded|failed|timed_out|cancelled)$/' "$work/runs.tsv" | wc -l)"

# Checks.
dups=$(cut -f2-4 "$work/runs.tsv" | sort | uniq -d)
[[ -z $dups ]] || fail "more than one recorded run for (worktree, job, sha):"$'\n'"$dups"
extra=$(comm -13 "$work/expected" "$work/have")
[[ -z $extra ]] || fail "runs for commits not on main:"$'\n'"$extra"
bad=$(awk -F'\t' '$5 != "succeeded"' "$work/runs.tsv")
[[ -z $bad ]] || fail "runs that did not succeed (id worktree job sha state attempt):"$'\n'"$bad"
runs=$(wc -l < "$work/runs.tsv")
# Repeats: a job's process that was neither killed nor stopped never runs
# again for its sha, whatever happened to wtd (kill -9, crash points): every
# execution of a (job, sha) past the first needs a stop of that job that came
# at or after its effect line (stopped-JOB, "SHA 1"). The stops of a sha are
# counted, not just seen, so one stop does not excuse two repeats.
executions=0 repeated=0 repeated_stopped=0 repeated_other=0 job_stops=0
for j in "${jobs[@]}"; do
  missing=$(sort -u "$work/effect-$j" 2> /dev/null | comm -23 "$work/shas" -)
  [[ -z $missing ]] || fail "job $j never ran for:"$'\n'"$missing"
  touch "$work/stopped-$j"
  job_stops=$((job_stops + $(wc -l < "$work/stopped-$j")))
  # One line per sha executed more than once: SHA EXECUTIONS STOPS-AFTER-EFFECT.
  awk 'FILENAME == ARGV[1] { if ($2 == 1) stops[$1]++; next }
       { n[$1]++ }
       END { for (s in n) if (n[s] > 1) print s, n[s], stops[s] + 0 }' \
    "$work/stopped-$j" "$work/effect-$j" > "$work/repeats-$j"
  executions=$((executions + $(wc -l < "$work/effect-$j")))
  read -r r s o < <(awk '{ r += $2 - 1; k = $2 - 1 < $3 ? $2 - 1 : $3; s += k; o += $2 - 1 - k }
                         END { print r + 0, s + 0, o + 0 }' "$work/repeats-$j")
  repeated=$((repeated + r)) repeated_stopped=$((repeated_stopped + s))
  repeated_other=$((repeated_other + o))
  unexplained=$(awk '$2 - 1 > $3' "$work/repeats-$j")
  [[ -z $unexplained ]] || fail "job $j executed again for a sha without being stopped" \
    "(sha executions stops-after-its-effect):"$'\n'"$unexplained"
done
((executions - runs == repeated)) ||
  fail "$executions executions for $runs runs, but $repeated repeats counted"
retried=$(awk -F'\t' '$6 > 1' "$work/runs.tsv" | wc -l)

"$wtctl" --state-dir "$state" stop --wait 120 > /dev/null || fail "wtctl stop failed"
reap "final graceful stop" 0

# Locks: none left, and one receipt per (job, sha) in the notes.
left=$(git -C "$repo" for-each-ref refs/wtd/locks)
[[ -z $left ]] || fail "lock refs left behind:"$'\n'"$left"
while read -r sha; do
  note=$(git -C "$repo" notes --ref=wtd show "$sha" 2> /dev/null || true)
  for j in "${jobs[@]}"; do
    n=$(grep -c "\"worktree\":\"main\",\"job\":\"$j\"," <<< "$note" || true)
    ((n == 1)) || fail "$n receipts of $j for $sha:"$'\n'"$note"
  done
done < "$work/shas"

# Worktrees: each job ran in a tree at exactly its commit; what is under
# the worktree root is exactly what wtctl lists, and git agrees.
[[ ! -s $work/dirty ]] || fail "jobs ran in a tree not at their commit:"$'\n'"$(cat "$work/dirty")"
root=$(realpath "$state/worktrees" 2> /dev/null || echo "$state/worktrees")
listed=$("$wtctl" --state-dir "$state" --json worktree list |
  sed -n 's/^ *"path": "\(.*\)",\{0,1\}$/\1/p' | xargs -r -n1 realpath | sort)
on_disk=$(find "$root" -mindepth 1 -maxdepth 1 2> /dev/null | xargs -r -n1 realpath | sort)
[[ $listed == "$on_disk" ]] || fail "worktree root holds"$'\n'"$on_disk"$'\n'"but wtctl lists"$'\n'"$listed"
in_git=$(git -C "$repo" worktree list --porcelain | sed -n 's/^worktree //p' | xargs -r -n1 realpath |
  grep "^$root/" | sort || true)
[[ $listed == "$in_git" ]] || fail "git worktree list has"$'\n'"$in_git"$'\n'"but wtctl lists"$'\n'"$listed"
left=$(git -C "$repo" for-each-ref refs/heads/wtd/slots)
[[ -z $left ]] || fail "slot branches left behind:"$'\n'"$left"
locked=$(find "$repo/.git/worktrees" -name locked 2> /dev/null || true)
[[ -z $locked ]] || fail "locked admin entries left behind:"$'\n'"$locked"
slots=$(wc -l <<< "$listed")

echo "torture: PASSED: $((commits)) commits, ${#jobs[@]} jobs, $runs runs recorded exactly once," \
  "all succeeded in their commit's tree, one receipt each, no lock left, $slots worktrees" \
  "owned; $retried runs needed more than one attempt"
echo "torture: $executions executions, $repeated repeated: $repeated_stopped after a stop of" \
  "the job itself ($job_stops jobs stopped), $repeated_other otherwise"
echo "torture: wtd started $starts times: $kills kill -9, $crashes crash-point exits (86)," \
  "$stops SIGTERM stops"
