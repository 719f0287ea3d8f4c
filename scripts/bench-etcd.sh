# shellcheck shell=bash
# bench-etcd.sh — the etcd rows of scripts/bench (sourced; `BENCH_ONLY=etcd scripts/bench`).
#
# A 3-member etcd cluster on 127.0.0.1 (the distribution's etcd, data under $W/etcd) and the
# private sshd of bench-lib.sh. Measures, side by side in one hyperfine run:
#   - run-job of a 1-file local job with no lock, with one etcd lock key (lease grant, acquire
#     transaction, release transaction, revoke), and with one remote lock file over ssh on
#     127.0.0.1 (create, refresh, release): the deltas are what the lock costs a run;
#   - hand-off: a blocker released (etcdctl del / ssh rm) → the waiting run's "sync 0
#     starting", R_HAND times each: etcd (watch) vs a remote lock file (polling, wait_time 2s)
#     vs a remote lock file on a host that runs backupmanager (`watch-lock` over ssh; a second
#     sshd whose sessions find this build on their PATH);
#   - 50 contenders for 3 slots: 50 run-jobs (own configs, one slot `into_a: 3`) started at
#     once vs the same 50 without the slot: throughput (runs/s), fairness (each run's wait
#     from the common start to its rsync; max / median), every contender ran (no starvation), never more than 3 rsyncs at once.
#     With BENCH_BASELINE, the older binary's 50 runs with the slot too, in the same rounds.
# Writes docs/bench-etcd.md (generated; notes by hand go to docs/bench-notes.md).

etcd_free_port() {
  local p=$((24000 + RANDOM % 4000))
  while ss -ltn 2>/dev/null | grep -q ":$p "; do p=$((p + 1)); done
  echo "$p"
}

bench_etcd() {
  local E=$W/etcd i cluster="" eps=() ports=()
  command -v etcd >/dev/null && command -v etcdctl >/dev/null \
    || { echo "bench: etcd/etcdctl missing (scripts/deps.sh installs etcd-server, etcd-client)" >&2; exit 1; }
  mkdir -p "$E"
  for i in 0 1 2; do
    ports+=("$(etcd_free_port) $(etcd_free_port)")
  done
  for i in 0 1 2; do
    set -- ${ports[$i]}
    cluster+="${cluster:+,}m$i=http://127.0.0.1:$2"
    eps+=("http://127.0.0.1:$1")
  done
  for i in 0 1 2; do
    set -- ${ports[$i]}
    etcd --name "m$i" --data-dir "$E/m$i" \
      --listen-client-urls "http://127.0.0.1:$1" --advertise-client-urls "http://127.0.0.1:$1" \
      --listen-peer-urls "http://127.0.0.1:$2" --initial-advertise-peer-urls "http://127.0.0.1:$2" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "bm-bench-$$" \
      --logger zap --log-outputs stderr > "$E/m$i.log" 2>&1 &
    PIDS+=("$!")
  done
  local EP; EP=$(IFS=,; echo "${eps[*]}")
  ETCDCTL=(env ETCDCTL_API=3 etcdctl --endpoints="$EP")
  for i in $(seq 1 100); do "${ETCDCTL[@]}" endpoint health >/dev/null 2>&1 && break; sleep 0.1; done
  "${ETCDCTL[@]}" endpoint health >/dev/null || { tail "$E"/m*.log >&2; echo "bench: etcd did not come up" >&2; exit 1; }
  local port; port=$(etcd_free_port)
  log "private sshd on 127.0.0.1:$port"
  bench_sshd_up "$W/sshd" "$port"
  PIDS+=("$SSHD_PID")

  # A second sshd from the same config whose sessions find this build's backupmanager on their
  # PATH (a remote host that runs backupmanager: the waiter uses `watch-lock` there).
  local port2; port2=$(etcd_free_port)
  mkdir -p "$W/sshd2"
  sed -e "s/^Port .*/Port $port2/" -e "s|^PidFile .*|PidFile $W/sshd2/sshd.pid|" "$W/sshd/sshd_config" > "$W/sshd2/sshd_config"
  echo "SetEnv PATH=$(dirname "$BM"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" >> "$W/sshd2/sshd_config"
  echo "[127.0.0.1]:$port2 $(awk '{print $1" "$2}' "$W/sshd/host_ed25519.pub")" >> "$SSH_KNOWN_HOSTS"
  # Root's ~/.bashrc hidden from its sessions, as bench-lib.sh does for the first one.
  local binds=()
  [ -f /root/.bashrc ] && binds+=("$W/sshd/empty-bashrc:/root/.bashrc")
  # shellcheck disable=SC2016
  local launch='for b in "$@"; do case "$b" in --) shift; break ;; esac; mount --bind "${b%%:*}" "${b#*:}" || exit 1; shift; done; exec "$@"'
  unshare --mount --propagation slave sh -c "$launch" sh ${binds[@]+"${binds[@]}"} -- \
    /usr/sbin/sshd -f "$W/sshd2/sshd_config" -E "$W/sshd2/sshd.log"
  for i in $(seq 1 100); do [ -s "$W/sshd2/sshd.pid" ] && break; sleep 0.05; done
  PIDS+=("$(cat "$W/sshd2/sshd.pid")")

  mkdir -p "$E/src" "$E/dst"; echo one > "$E/src/file"
  local eplist; eplist=$(printf '"%s",' "${eps[@]}"); eplist="[${eplist%,}]"
  # One config per case; the job is the same 1-file local copy.
  cfg() { # NAME BACKEND LOCKS_YAML BLOCKS_YAML
    cat > "$E/$1.yaml" <<CFG
cron_schedule: '0 3 * * *'
pid_file_dir: $E/run-$1
state_dir: $E/state-$1
lock_backend: $2
etcd: {endpoints: $eplist, prefix: /bmbench, lease_ttl: 10s}
jobs:
  - id: j
    identity_file: $SSH_KEY
    known_hosts_file: $SSH_KNOWN_HOSTS
    lock_files: $3
    blocks_on: $4
    syncs: [{source: $E/src/, dest: $E/dst/$1/}]
CFG
  }
  local remote="{type: remote, user: root, host: 127.0.0.1, port: $port"
  cfg none files "[]" "[]"
  cfg etcd etcd "[{type: local, path: /bmbench/lock}]" "[]"
  cfg file files "[$remote, path: $E/remote.lock}]" "[]"
  cfg wetcd etcd "[]" "[{type: local, lock_file_path: /bmbench/blocker, wait_time: 2s}]"
  cfg wfile files "[]" "[$remote, lock_file_path: $E/remote-blocker.lock, wait_time: 2s}]"
  cfg wwatch files "[]" "[{type: remote, user: root, host: 127.0.0.1, port: $port2, lock_file_path: $E/remote-blocker.lock, wait_time: 300s}]"
  for c in none etcd file; do "$BM" --config "$E/$c.yaml" run-job j >/dev/null 2>&1 || { "$BM" --config "$E/$c.yaml" run-job j; exit 1; }; done
  hf etcdlock --warmup 3 --runs "$R_LOCK" \
    -n "run-job, no lock" "$BM --config $E/none.yaml run-job j" \
    -n "run-job, one etcd lock (3 members, loopback)" "$BM --config $E/etcd.yaml run-job j" \
    -n "run-job, one remote lock file (ssh 127.0.0.1)" "$BM --config $E/file.yaml run-job j"

  # Hand-off: the blocker is held, the waiter waits; release at T0; the waiter's rsync at T1.
  local key; key="/bmbench/locks/$(hostname):/bmbench/blocker"
  handoff() { # CASE HOLD_CMD RELEASE_CMD
    local c=$1 hold=$2 rel=$3 n t0 log
    : > "$E/handoff-$c.txt"
    for n in $(seq 1 "$R_HAND"); do
      eval "$hold"
      log=$E/handoff-$c-$n.log
      "$BM" --config "$E/w$c.yaml" --log-format json run-job j 2> "$log" &
      local wp=$!
      for i in $(seq 1 200); do grep -q '"event":"waiting"' "$log" && break; sleep 0.05; done
      sleep 0.5
      t0=$(date +%s.%N)
      eval "$rel"
      wait "$wp" || { cat "$log" >&2; echo "bench: hand-off waiter failed" >&2; exit 1; }
      python3 - "$log" "$t0" >> "$E/handoff-$c.txt" <<'PY'
import json, sys, datetime
t0 = float(sys.argv[2])
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("event") == "sync_started":
        ts = datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
        print(f"{(ts - t0) * 1000:.1f}")
        break
PY
    done
  }
  handoff etcd "\"\${ETCDCTL[@]}\" put '$key' held >/dev/null" "\"\${ETCDCTL[@]}\" del '$key' >/dev/null"
  # The "remote" host is this one (127.0.0.1): the holder writes and removes the file directly,
  # so the release itself costs no ssh connection (it would on a real second host, for both).
  handoff file "echo held > '$E/remote-blocker.lock'" "rm -f '$E/remote-blocker.lock'"
  handoff watch "echo held > '$E/remote-blocker.lock'" "rm -f '$E/remote-blocker.lock'"

  # 50 contenders for 3 slots: 50 hosts (one config, state and pid_file_dir each) start the
  # same 1-file job at once; every run needs slot into_a (3 places). Peer: the same 50 runs
  # with no slot. Per round: wall time from the first start to the last exit (throughput),
  # each run's wait (its first log line → "sync 0 starting"), exit codes (no starvation: all
  # 50 must succeed and copy), and the most rsyncs open at once. A run's wait is from the
  # common start to its "sync 0 starting" (process start included: the peer shows that part).
  local N_CONT=50 R_SLOT=${R_SLOT:-3} r k
  [ "$QUICK" = 1 ] && R_SLOT=2
  for k in $(seq 0 $((N_CONT - 1))); do
    cat > "$E/slot$k.yaml" <<CFG
cron_schedule: '0 3 * * *'
pid_file_dir: $E/run-slot$k
state_dir: $E/state-slot$k
lock_backend: etcd
etcd: {endpoints: $eplist, prefix: /bmbench, lease_ttl: 10s}
slots: {into_a: 3}
jobs:
  - id: j
    uses_slots: [into_a]
    syncs: [{source: $E/src/, dest: $E/dst/slot$k/}]
CFG
    sed -e '/^slots:/d' -e '/uses_slots:/d' -e 's/^lock_backend: etcd/lock_backend: files/' \
      -e "s/slot$k/free$k/g" "$E/slot$k.yaml" > "$E/free$k.yaml"
  done
  contend() { # CASE ROUND [BINARY CONFIGS] → $E/contend-CASE-ROUND/{N.log,N.rc,wall}
    local c=$1 d=$E/contend-$1-$2 bin=${3:-$BM} cfgs=${4:-$1} k t0 t1 pids=()
    rm -rf "$d"; mkdir -p "$d"
    t0=$(date +%s.%N)
    for k in $(seq 0 $((N_CONT - 1))); do
      ( "$bin" --config "$E/$cfgs$k.yaml" --log-format json run-job j 2> "$d/$k.log"; echo $? > "$d/$k.rc" ) &
      pids+=("$!")
    done
    wait "${pids[@]}"  # only these: etcd and sshd are background jobs too
    t1=$(date +%s.%N)
    echo "$t0 $t1" > "$d/wall"
  }
  for r in $(seq 1 "$R_SLOT"); do
    log "50 contenders for 3 slots, round $r"
    contend slot "$r"
    if [ -n "${BASE:-}" ]; then contend slotbase "$r" "$BASE" slot; fi
    contend free "$r"
  done
  "${ETCDCTL[@]}" get --prefix --keys-only /bmbench/slots/ > "$E/slots-left.txt"

  python3 - "$W/hf-etcdlock.json" "$E/handoff-etcd.txt" "$E/handoff-file.txt" "$E/handoff-watch.txt" "$E" "$N_CONT" "$R_SLOT" "${BASE:+1}" > "$ROOT/docs/bench-etcd.md" <<'PY'
import json, statistics, sys
hf = json.load(open(sys.argv[1]))["results"]
med = {r["command"]: statistics.median(r["times"]) for r in hf}
names = list(med)
base = med[names[0]]
print("# etcd rows (generated by `BENCH_ONLY=etcd scripts/bench`)\n")
print("| command | median | vs no lock |")
print("|---|---|---|")
for n in names:
    print(f"| {n} | {med[n] * 1000:.1f} ms | {(med[n] - base) * 1000:+.1f} ms |")
print()
print("| hand-off (blocker released → waiter's rsync started) | median | min | max | n |")
print("|---|---|---|---|---|")
for label, f in [("etcd key deleted (watch)", sys.argv[2]), ("remote lock file removed over ssh (polling, wait_time 2s)", sys.argv[3]), ("remote lock file removed over ssh (watch-lock on the holding host, wait_time 300s)", sys.argv[4])]:
    v = [float(x) for x in open(f) if x.strip()]
    print(f"| {label} | {statistics.median(v):.0f} ms | {min(v):.0f} ms | {max(v):.0f} ms | {len(v)} |")
import datetime, glob, os
E, n, rounds = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
def ts(e):
    return datetime.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
def contenders(case, r):
    d = f"{E}/contend-{case}-{r}"
    t0, t1 = map(float, open(f"{d}/wall").read().split())
    waits, spans, ok = [], [], 0
    for k in range(n):
        rc = open(f"{d}/{k}.rc").read().strip()
        ev = []
        for line in open(f"{d}/{k}.log"):
            try:
                ev.append(json.loads(line))
            except ValueError:
                pass
        start = next((ts(e) for e in ev if e.get("event") == "sync_started"), None)
        done = next((ts(e) for e in ev if e.get("event") == "sync_done"), None)
        if rc == "0" and start is not None and done is not None:
            ok += 1
            waits.append(start - t0)
            spans.append((start, done))
    pts = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda p: (p[0], p[1]))
    cur = top = 0
    for _, dlt in pts:
        cur += dlt
        top = max(top, cur)
    return t1 - t0, ok, waits, top
print()
print(f"| {n} contenders, 1-file job, started at once | round | wall | runs/s | ran (exit 0 and copied) | wait (start → rsync) median | max | max/median | most rsyncs at once |")
print("|---|---|---|---|---|---|---|---|---|")
thr = {"slot": [], "slotbase": [], "free": []}
cases = [("slot", "slot into_a: 3 (etcd)"), ("slotbase", "slot into_a: 3 (etcd), baseline binary"), ("free", "no slot (peer)")]
cases = [c for c in cases if c[0] != "slotbase" or sys.argv[8:9] == ["1"]]
for r in range(1, rounds + 1):
    for case, label in cases:
        wall, ok, waits, top = contenders(case, r)
        thr[case].append(n / wall)
        med = statistics.median(waits) if waits else float("nan")
        mx = max(waits) if waits else float("nan")
        print(f"| {label} | {r} | {wall:.2f} s | {n / wall:.1f} | {ok}/{n} | {med * 1000:.0f} ms | {mx * 1000:.0f} ms | {mx / med:.1f} | {top} |")
print()
print(f"Throughput with the slot vs without (median over rounds): {statistics.median(thr['slot']) / statistics.median(thr['free']):.2f}×. Slot keys left in etcd after the rounds: {sum(1 for l in open(E + '/slots-left.txt') if l.strip())}.")
if thr["slotbase"]:
    print(f"\nWith the slot, this build vs the baseline binary (median over rounds): {statistics.median(thr['slot']) / statistics.median(thr['slotbase']):.2f}× the throughput.")
PY
  cat "$ROOT/docs/bench-etcd.md"
  # ssh ControlMaster processes the runs left (scripts/bench's cleanup looks under $W/run*).
  for d in "$E"/run-*/ssh; do
    for s in "$d"/*; do [ -S "$s" ] && ssh -o ControlPath="$s" -O exit x >/dev/null 2>&1; done
  done
  return 0
}
