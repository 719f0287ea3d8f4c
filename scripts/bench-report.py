#!/usr/bin/env python3
"""Writes docs/BENCHMARKS.md (stdout) from what scripts/bench left in $W. Run by scripts/bench."""
import datetime
import json
import os
import statistics

E = os.environ
W = E["W"]


def hf(name):
    """name -> list of (label, median_s, min_s, max_s, mean_s, n) from a hyperfine export."""
    with open(f"{W}/hf-{name}.json") as f:
        res = json.load(f)["results"]
    return [(r["command"], r["median"], r["min"], r["max"], r["mean"], len(r["times"])) for r in res]


def cmds(name):
    out = []
    with open(f"{W}/cmds-{name}.txt") as f:
        for line in f:
            label, _, cmd = line.rstrip("\n").partition("\t")
            out.append((label, cmd))
    return out


def nums(path, col=0):
    try:
        with open(path) as f:
            return [float(l.split()[col]) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def ms(x):
    return f"{x * 1000:.1f} ms"


def mmm(xs):
    if not xs:
        return "n/a", "n/a", "n/a"
    return ms(statistics.median(xs)), ms(min(xs)), ms(max(xs))


def med(rows, label_start):
    for r in rows:
        if r[0].startswith(label_start):
            return r[1]
    raise KeyError(label_start)


def yes(ok):
    return "**yes**" if ok else "**no**"


BEGIN_H, END_H = "<!-- history:begin -->", "<!-- history:end -->"


def pairs_of(name):
    """The (a, b) seconds of each interleaved pair (scripts/bench `pairs`), or []."""
    try:
        with open(f"{W}/pairs-{name}.txt") as f:
            return [tuple(float(v) for v in l.split()) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def history_section():
    """The run-history section (section 9 of scripts/bench), between markers, so that a
    `BENCH_ONLY=history` run can replace it alone in an existing docs/BENCHMARKS.md."""
    o = []
    q = o.append
    hq, hr = hf("histquery"), hf("histrec")
    st_txt = med(hq, "backupmanager status (")
    st_json = med(hq, "backupmanager status --format json")
    hist = med(hq, "backupmanager history")
    floor = med(hq, "sqlite3 CLI")
    rec_s = med(hr, "run-job h000, history recorded (small")
    rec_b = med(hr, "run-job h000, history recorded (1,000,000")
    off = med(hr, "run-job h000, history.sqlite unopenable")
    d_s, d_b = rec_s - off, rec_b - off
    hp = pairs_of("histrec")
    d_p = statistics.median(a - b for a, b in hp) if hp else None
    n = int(E.get("NHIST") or 0)
    q(BEGIN_H)
    q("## Run history")
    q("")
    if E.get("ONLY") == "history":
        now_ = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        q(f"**From a separate run**: `BENCH_ONLY=history scripts/bench{' --quick' if E['QUICK'] == '1' else ''}` "
          f"on {now_} (commit {E['GIT_REV']}; {E['CPU_MODEL']}, {E['NCPU']} cores; load average "
          f"at the end {E['LOADAVG']}; {E['HF_V']}; sqlite3 CLI {E['SQLITE_V']}). It replaced only "
          "this section; the rest of the file is from the run named at the top.")
    else:
        q(f"From the same run as the rest of this file (sqlite3 CLI {E['SQLITE_V']}).")
    q("")
    q("| what | measured (median) | result | target | met? |")
    q("|---|---|---|---|---|")
    if d_p is not None:
        q(("| recording the run history, `run-job` of a 1-file local job | "
           f"{len(hp)} interleaved pairs, recorded (small database) vs not recorded: median "
           f"per-pair difference {d_p * 1000:+.1f} ms; hyperfine means: recorded {ms(rec_s)} "
           f"(small), {ms(rec_b)} ({n:,}-run database), not recorded {ms(off)} "
           f"({d_s * 1000:+.1f} / {d_b * 1000:+.1f} ms) | {d_p * 1000:+.1f} ms | "
           f"≤ +2 ms | {yes(d_p <= 0.002)} |"))
    else:
        q(("| recording the run history, `run-job` of a 1-file local job | "
           f"recorded {ms(rec_s)} (small database), {ms(rec_b)} ({n:,}-run database); not recorded "
           f"(`history.sqlite` unopenable) {ms(off)} | {d_s * 1000:+.1f} ms small, {d_b * 1000:+.1f} ms big | "
           f"≤ +2 ms | {yes(max(d_s, d_b) <= 0.002)} |"))
    q((f"| `status`, 100 jobs, {n:,} runs | {ms(st_txt)} text, {ms(st_json)} `--format json` | "
       f"{ms(max(st_txt, st_json))} | ≤ 50 ms | {yes(max(st_txt, st_json) <= 0.050)} |"))
    q((f"| `history JOB -n 30`, same database | {ms(hist)}; the same query in the sqlite3 CLI "
       f"{ms(floor)} | {ms(hist)} | ≤ 20 ms | {yes(hist <= 0.020)} |"))
    q("")
    q(f"100 local jobs `h000` … `h099` (one 1-file sync each). Each database is created by a real "
      f"`run-job` (the product's schema and `user_version`); the big one then gets "
      f"{n - 1:,} more runs from the sqlite3 CLI, 10,000 per job, about 43 minutes apart over "
      f"300 days and older than the real run, each with one step; every 50th run failed "
      f"(`rsync-exit(23)`); the other columns are copied from the real run. Database size: "
      f"{E.get('HIST_DB_MB', '?')} MB. `status --format json` listed {E.get('HIST_STATUS_JOBS', '?')} jobs. "
      "There is no switch that turns recording off, so the unrecorded side is the same binary "
      "and job with a state_dir whose `history.sqlite` is a directory: the recorder fails to open "
      "it, warns once and records nothing. The difference is what recording costs (opening the "
      "database, WAL, the begin/step/end writes), including the recorder thread's start and its "
      "flush at exit.")
    for name, title in [("histquery", "status and history on 1,000,000 runs"),
                        ("histrec", "what recording costs a run")]:
        q("")
        q(f"### {title}")
        q("")
        q("| command | median | min | max | mean | runs |")
        q("|---|---|---|---|---|---|")
        for label, m, lo, hi, mean, k in hf(name):
            q(f"| {label} | {ms(m)} | {ms(lo)} | {ms(hi)} | {ms(mean)} | {k} |")
        q("")
        q("Commands (hyperfine `-N`, no shell):")
        q("")
        q("```")
        for label, cmd in cmds(name):
            q(f"{label}:\n    {cmd}")
        q("```")
    q(END_H)
    return o


if E.get("ONLY") == "history":
    DOCP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "BENCHMARKS.md")
    old = open(DOCP).read().rstrip("\n").split("\n") if os.path.exists(DOCP) else ["# Benchmarks"]
    sec = history_section()
    if BEGIN_H in old and END_H in old:
        a, b = old.index(BEGIN_H), old.index(END_H)
        new = old[:a] + sec + old[b + 1:]
    elif "## Details" in old:
        a = old.index("## Details")
        new = old[:a] + sec + [""] + old[a:]
    else:
        new = old + [""] + sec
    # The hand-written notes may have changed with this run: refresh their copy too.
    NOTES_ = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "bench-notes.md")
    starts = [i for i, l in enumerate(new) if l.startswith("**Notes on this run**")]
    if starts and "## Machine" in new and os.path.exists(NOTES_):
        a, b = starts[0], new.index("## Machine")
        with open(NOTES_) as f:
            notes_ = f.read().strip()
        new = new[:a + 2] + notes_.split("\n") + [""] + new[b:]
    print("\n".join(new))
    raise SystemExit(0)


out = []
p = out.append

full, nochg, one, lock, val = hf("full"), hf("nochange"), hf("one"), hf("lockcheck"), hf("validate")
rows = []

r_full = med(full, "backupmanager run-job big") / med(full, "same rsync argv")
r_nochg = med(nochg, "backupmanager run-job big") / med(nochg, "same rsync argv")
d_one = med(one, "backupmanager run-job one") - med(one, "same rsync argv")
rows.append(("run-job, 20,000 files + 20 × 20 MiB, full copy",
             f"{ms(med(full, 'backupmanager run-job big'))} vs {ms(med(full, 'same rsync argv'))} (same argv by hand)",
             f"ratio {r_full:.3f}", "≤ 1.02", yes(r_full <= 1.02)))
rows.append(("run-job, same tree, no change",
             f"{ms(med(nochg, 'backupmanager run-job big'))} vs {ms(med(nochg, 'same rsync argv'))}",
             f"ratio {r_nochg:.3f}", "≤ 1.02", yes(r_nochg <= 1.02)))
rows.append(("run-job, 1-file tree (fixed overhead)",
             f"{ms(med(one, 'backupmanager run-job one'))} vs {ms(med(one, 'same rsync argv'))}",
             f"{d_one * 1000:+.1f} ms", "≤ +5 ms", yes(d_one <= 0.005)))

per_check = (med(lock, "run-job --dry-run, 10") - med(lock, "run-job --dry-run, 0")) / 10
deltas = nums(f"{W}/lockcheck-deltas.txt")
d_med = statistics.median(deltas) if deltas else float("nan")
new_conn = med(lock, "ssh test -e, new connection")
rows.append(("remote lock check, warm",
             f"(10 − 0 blockers)/10 = {ms(per_check)}; log deltas median {ms(d_med)}; "
             f"`ssh host test -e` new connection {ms(new_conn)}",
             f"{ms(per_check)}", "≤ 15 ms", yes(per_check <= 0.015)))

hl = nums(f"{W}/hand-local-bm.txt")
hf_ = nums(f"{W}/hand-local-flock.txt")
hp = nums(f"{W}/hand-local-poll.txt")
rows.append(("hand-off, local blocker removed → rsync started",
             f"median {mmm(hl)[0]} (max {mmm(hl)[2]}); `flock -w` {mmm(hf_)[0]}; 1 s poll loop {mmm(hp)[0]}",
             mmm(hl)[0], "≤ 20 ms", yes(bool(hl) and statistics.median(hl) <= 0.020)))
hr = nums(f"{W}/hand-remote-bm.txt")
hrp = nums(f"{W}/hand-remote-poll.txt")
bound = 1.0 * 1.1 + 0.050
rows.append(("hand-off, remote blocker removed → rsync started (wait_time 1 s)",
             f"median {mmm(hr)[0]}, max {mmm(hr)[2]}; ssh poll loop (1 s) median {mmm(hrp)[0]}, max {mmm(hrp)[2]}",
             f"max {mmm(hr)[2]}", "≤ interval (1 s + ≤10% jitter) + 50 ms = 1150 ms",
             yes(bool(hr) and max(hr) <= bound)))

late = nums(f"{W}/sched-late.txt")
cron_late = nums(f"{W}/sched-cron-late.txt")
rows.append(("schedule accuracy: slot → rsync started",
             f"median {mmm(late)[0]}, max {mmm(late)[2]} ({len(late)} starts); "
             + (f"busybox crond (same window) median {mmm(cron_late)[0]}" if cron_late else "cron: see below"),
             mmm(late)[0], "≤ 100 ms late (median)", yes(bool(late) and statistics.median(late) <= 0.100)))

v_big = med(val, "backupmanager validate (1,000")
v_rss = int(E["VAL_RSS"]) / 1024
rsnap = [r for r in val if r[0].startswith("rsnapshot")]
rows.append(("`validate`, 1,000 jobs in 50 drop-in files",
             f"{ms(v_big)}, {v_rss:.1f} MB max RSS"
             + (f"; rsnapshot configtest (1 point) {ms(rsnap[0][1])}, {int(E['RSNAP_RSS']) / 1024:.1f} MB" if rsnap else ""),
             f"{ms(v_big)}, {v_rss:.1f} MB", "≤ 50 ms, ≤ 20 MB", yes(v_big <= 0.050 and v_rss <= 20)))

tck = int(E["CLK_TCK"])
window = float(E["IDLE_T1"]) - float(E["IDLE_T0"])


def idle(a, b):
    a, b = [int(x) for x in a.split()], [int(x) for x in b.split()]
    return b[0] / 1024, b[1] / 1024, (b[2] - a[2]) * 1000 / tck


bm_rss, bm_hwm, bm_cpu = idle(E["IDLE_BM0"], E["IDLE_BM1"])
cr = idle(E["IDLE_CR0"], E["IDLE_CR1"]) if E["HAVE_CROND"] == "1" else None
lp = idle(E["IDLE_LP0"], E["IDLE_LP1"])
rows.append((f"daemon idle, 100 jobs, {window:.0f} s",
             f"RSS {bm_rss:.1f} MB (HWM {bm_hwm:.1f}), CPU {bm_cpu:.0f} ms"
             + (f"; busybox crond (100 entries) RSS {cr[0]:.1f} MB, CPU {cr[2]:.0f} ms" if cr else "")
             + f"; shell sleep loop RSS {lp[0]:.1f} MB, CPU {lp[2]:.0f} ms",
             f"{bm_rss:.1f} MB, {bm_cpu:.0f} ms", "RSS ≤ 10 MB, ≤ 50 ms CPU", yes(bm_rss <= 10 and bm_cpu <= 50)))

mb = [int(x) for x in E["MEM_BM"].split()]
mraw = int(E["MEM_RAW"])
rows.append(("memory, 20,000-file full copy",
             f"backupmanager VmHWM {mb[0] / 1024:.1f} MB; its rsync {mb[1] / 1024:.1f} MB; rsync by hand {mraw / 1024:.1f} MB",
             f"+{mb[0] / 1024:.1f} MB", "daemon adds ≤ 5 MB", yes(mb[0] <= 5 * 1024)))

# Snapshots (section 8 of scripts/bench).
def paired(name):
    """Interleaved pairs (order alternating): (median of per-pair ratios a/b, pairs, median a, median b)."""
    xs = []
    try:
        with open(f"{W}/pairs-{name}.txt") as f:
            xs = [tuple(float(v) for v in l.split()) for l in f if l.strip()]
    except FileNotFoundError:
        pass
    if not xs:
        return None
    return (statistics.median(a / b for a, b in xs), len(xs),
            statistics.median(a for a, _ in xs), statistics.median(b for _, b in xs))


def paired_txt(name):
    pr = paired(name)
    return f"; interleaved pairs: ratio {pr[0]:.3f} ({pr[1]} pairs)" if pr else ""


def paired_note(name, a, b):
    pr = paired(name)
    if not pr:
        return ""
    return (f" Cross-check, {pr[1]} interleaved pairs (each side prepared as above and timed by "
            f"the shell, the order alternating so that a change of load cannot land on one side "
            f"only): {a} median {ms(pr[2])}, {b} median {ms(pr[3])}, median per-pair ratio {pr[0]:.3f}.")


sfull, snochg, srot, sprune, slist = (hf("snapfull"), hf("snapnochg"),
                                      hf("snaprot") if E.get("HAVE_RSNAP_SNAP") == "1" else None,
                                      hf("snapprune"), hf("snaplist"))
for pname, res, what in [("snapfull", sfull, "run-job, snapshot mode, 20,000 files, first snapshot (full copy)"),
                         ("snapnochg", snochg, "run-job, snapshot mode, same tree, no change (`--link-dest` to the last)")]:
    bm_ = med(res, "backupmanager run-job snap")
    raw = med(res, "same rsync")
    dur = med(res, "same argv by hand, then sync -f")
    r = bm_ / raw
    rows.append((what,
                 f"{ms(bm_)} vs {ms(raw)} (same argv by hand){paired_txt(pname)}; "
                 f"by hand + `sync -f` {ms(dur)} (ratio {bm_ / dur:.3f})",
                 f"ratio {r:.3f}", "≤ 1.02", yes(r <= 1.02)))
if srot:
    r = med(srot, "backupmanager run-job snaprot") / med(srot, "rsnapshot alpha")
    rows.append(("snapshot rotation (3 kept, one new, oldest removed) vs `rsnapshot alpha`",
                 f"{ms(med(srot, 'backupmanager run-job snaprot'))} vs {ms(med(srot, 'rsnapshot alpha'))}"
                 + paired_txt("snaprot"),
                 f"ratio {r:.3f}", "≤ 1.0", yes(r <= 1.0)))
r_prune = med(sprune, "backupmanager prune") / med(sprune, "rm -rf")
rows.append(("`prune` removing one 20,000-file snapshot",
             f"{ms(med(sprune, 'backupmanager prune'))} vs {ms(med(sprune, 'rm -rf'))} (`rm -rf` of an identical tree)"
             + paired_txt("snapprune"),
             f"ratio {r_prune:.3f}", "≤ 1.1", yes(r_prune <= 1.1)))
l_txt = med(slist, "backupmanager snapshots snaplist (")
l_json = med(slist, "backupmanager snapshots snaplist --format json")
rows.append(("`snapshots JOB`, 1,000 snapshots",
             f"{ms(l_txt)} text, {ms(l_json)} `--format json`; `ls` of the directory {ms(med(slist, 'ls '))}",
             ms(max(l_txt, l_json)), "≤ 100 ms", yes(max(l_txt, l_json) <= 0.100)))

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
p("# Benchmarks")
p("")
p(f"Generated by `scripts/bench{' --quick' if E['QUICK'] == '1' else ''}` on {now} (commit {E['GIT_REV']}). "
  "Re-run it to regenerate this file; nothing here is edited by hand.")
p("")
p("**Read the numbers as ratios.** The machine is shared with other builds and test runs, so "
  "absolute times move from run to run. Every comparison below comes from ONE hyperfine "
  "invocation (commands interleaved in time, same data, same warm caches) or from one loop that "
  "measures both sides back to back; medians and ratios are quoted from that run only.")
if E["QUICK"] == "1":
    p("")
    p("**This is a `--quick` run**: few repetitions and a 60 s idle window; use the full run for conclusions.")
NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "bench-notes.md")
if os.path.exists(NOTES):
    with open(NOTES) as f:
        notes = f.read().strip()
    if notes:
        p("")
        p("**Notes on this run** (written by hand in `docs/bench-notes.md`, copied here by the generator):")
        p("")
        p(notes)
p("")
p("## Machine")
p("")
p(f"- CPU: {E['CPU_MODEL']}, {E['NCPU']} cores; RAM {E['MEM_TOTAL']}; kernel {E['KERNEL']}")
p(f"- {E['RSYNC_V']}; {E['SSH_V']}; {E['HF_V']}")
p(f"- load average at the end of the run: {E['LOADAVG']} (other jobs share the machine)")
p("- transport: a private sshd on 127.0.0.1 (own host key, client key and known_hosts; root's "
  "`~/.bashrc` hidden from its sessions), so \"remote\" is loopback on the same disk")
p("")
p("## Results")
p("")
p("| what | measured (median unless said) | result | target | met? |")
p("|---|---|---|---|---|")
for r in rows:
    p("| " + " | ".join(r) + " |")
p("")
out.extend(history_section())
p("")
p("## Details")


def table(name, title, note=""):
    p("")
    p(f"### {title}")
    p("")
    if note:
        p(note)
        p("")
    p("| command | median | min | max | mean | runs |")
    p("|---|---|---|---|---|---|")
    for label, m, lo, hi, mean, n in hf(name):
        p(f"| {label} | {ms(m)} | {ms(lo)} | {ms(hi)} | {ms(mean)} | {n} |")
    p("")
    p("Commands (hyperfine `-N`, no shell):")
    p("")
    p("```")
    for label, cmd in cmds(name):
        p(f"{label}:\n    {cmd}")
    p("```")


table("full", "run-job, full copy (20,000 × 1 KiB + 20 × 20 MiB = 420 MiB)",
      "The destination is deleted before every run (`--prepare`). \"Same rsync argv\" is the "
      "argument vector backupmanager executed, captured by an `rsync` shim on PATH during a run "
      "(so it shares the same ControlMaster connection); the plain line opens a new ssh "
      "connection each time.")
p("")
p("A ratio below 1 does not mean backupmanager makes rsync faster: it runs the same argv. It "
  "shows the run-to-run spread on this shared machine (hyperfine runs each command's "
  "repetitions in a block, so load that changes between blocks lands on one side). Read such "
  "a result as \"no measurable overhead at this size\".")
table("nochange", "run-job, no change (same tree, already synced)",
      "`big_locked` adds a local and a remote lock file and one remote blocker: three extra "
      "multiplexed ssh commands (create, check, release). "
      f"Budget: the 1.02 target on a {ms(med(nochg, 'same rsync argv'))} job allows "
      f"{ms(0.02 * med(nochg, 'same rsync argv'))}; backupmanager's fixed cost measured on the "
      f"1-file tree below is {d_one * 1000:+.1f} ms, and its output handling is per line of "
      "rsync output (a no-change `-a` run prints only the `--stats` block), so the no-change "
      "ratio sits at the edge of the target by construction: the target is really a fixed-cost "
      "target for a job this short. Whatever exceeds the fixed cost here is within the run-to-run "
      "spread (compare min and max).")
table("one", "run-job, 1-file tree (fixed overhead)",
      "The difference between `run-job one` and the same argv by hand is backupmanager's fixed "
      "cost: process start, config load, run lock, spawning rsync and reading its output.")
table("lockcheck", "remote lock check, warm",
      "A warm check is one multiplexed ssh command (`[ -e ]` plus, when present, `date`, `stat`, "
      "`head`). Per-check cost = (median with 10 remote blockers − median with 0) / 10. "
      f"Cross-check from the logs: the time between consecutive \"blocker … absent\" lines of a "
      f"10-blocker dry run, {len(deltas)} intervals: median {mmm(deltas)[0]}, min {mmm(deltas)[1]}, max {mmm(deltas)[2]}.")
p("")
p("### Hand-off latency")
p("")
p(f"{E['R_HAND']} repetitions each. The blocker is removed at a random moment 0.2–1.2 s after "
  "the waiter reported that it waits; t0 is read by an already running helper process right "
  "before it calls unlink(2) (no fork or exec in between); t1 is the JSON log timestamp of "
  "\"sync 0 starting\" (logged just before rsync is spawned). For `flock -w` the holder is "
  "the benchmark shell closing its fd, and t1 is `date +%s.%N` run by `sh -c` under flock just "
  "before it execs rsync (sh+date start-up, ~1–2 ms, counts against flock). The poll loops are "
  "`while [ -e F ]; do sleep 1; done` (local) and the same with a multiplexed `ssh host test -e` "
  "(remote).")
p("")
p("| waiter | median | min | max |")
p("|---|---|---|---|")
for label, xs in [("backupmanager, local blocker (inotify; wait_time 60 s)", hl),
                  ("`flock -w 60 LOCK sh -c 'date; exec rsync …'`", hf_),
                  ("shell loop, local `[ -e ]` every 1 s", hp),
                  ("backupmanager, remote blocker (wait_time 1 s, up to 10% jitter)", hr),
                  ("shell loop, multiplexed `ssh test -e` every 1 s", hrp)]:
    a, b, c = mmm(xs)
    p(f"| {label} | {a} | {b} | {c} |")
p("")
p("A remote blocker has no event to wait on: the waiter re-checks every `wait_time` plus up to "
  "10% jitter (so two waiters do not retry in lock-step), and each re-check costs a lock create, "
  "a blocker check and, when still blocked, a release (three multiplexed ssh commands). The "
  "latency is therefore spread over [0, interval + checks]; its median is about half the "
  "interval, like any poller's. The target is the worst case: at most one interval plus 50 ms.")
p("")
p("### Schedule accuracy")
p("")
p(f"The daemon ran two `* * * * *` jobs (one local, one over ssh) for {E['SLOTS']} slot(s); "
  "lateness = timestamp of \"sync 0 starting\" minus the slot's minute boundary.")
p("")
p("| scheduler | starts | median late | min | max |")
p("|---|---|---|---|---|")
a, b, c = mmm(late)
p(f"| backupmanager daemon | {len(late)} | {a} | {b} | {c} |")
if cron_late:
    a, b, c = mmm(cron_late)
    p(f"| busybox crond (same window, `date +%s.%N` as the job) | {len(cron_late)} | {a} | {b} | {c} |")
p("")
p("Host cron (cronie/Vixie cron) could not be measured honestly here: it is the machine's own "
  "service, shared with other users, and its crontabs are system-wide. Its documented behaviour: "
  "1-minute granularity; the daemon wakes at the start of each minute and forks the jobs due in "
  "it, so a job starts within the first second of its minute (cronie's `cron_sleep` targets the "
  "minute boundary; Vixie cron's main loop does the same). busybox crond, run above from a private "
  "crontab directory, is a real cron measured in the same window.")
p("")
table("validate", "validate",
      f"1,000 jobs (each: remote host, 2 lock files, 1 remote blocker, 1 sync with 3 opts) in "
      f"`jobs.d/part01.yaml` … `part50.yaml` next to a main file. Max RSS over 5 runs "
      f"(`/usr/bin/time -f %M`): backupmanager {v_rss:.1f} MB"
      + (f"; rsnapshot {int(E['RSNAP_RSS']) / 1024:.1f} MB" if rsnap else "")
      + ". rsnapshot's `configtest` is a Perl program parsing one small config: it is a floor for "
      "an interpreter-based tool, not the same amount of work.")
p("")
p("Where the time goes (`valgrind --tool=callgrind`, instruction counts, repeatable on a busy "
  "machine; measured once on this 1,000-job config, 295 M instructions in total): YAML "
  "scanning and parsing in saphyr-parser ~60%, of which ~17% is malloc/free; deep clones of the "
  "drop-in files' job nodes (`decode.rs`: `items.iter().cloned()`, every node carrying a "
  "`Span` with its own `PathBuf`) ~15%, and dropping those clones and the final `Config` ~10%. "
  "Main has since (commit cf7f8ee) borrowed the job nodes instead of cloning them, shared a "
  "file's path across spans and skipped freeing at exit (−26% instructions); measured side by "
  "side on the same 1,000-job config after merging it into `bench` (hyperfine, 30 runs, mean): "
  "56.2 → 45.8 ms, max RSS 18.0 MB. The remaining time is the YAML parser.")
p("")
p("### Idle daemon")
p("")
p(f"100 jobs whose schedules do not fire in the window (all at hour {E.get('IDLE_HOUR', '+12 h')}), "
  f"{window:.0f} s. RSS from `/proc/PID/status` at the end, CPU = utime+stime (+ reaped "
  f"children's) from `/proc/PID/stat`, difference over the window. Jobs started by the idle "
  f"daemon during the window: {E['IDLE_FIRED']}.")
p("")
p("| process | RSS | VmHWM | CPU in window |")
p("|---|---|---|---|")
p(f"| backupmanager daemon | {bm_rss:.1f} MB | {bm_hwm:.1f} MB | {bm_cpu:.0f} ms |")
if cr:
    p(f"| busybox crond, 100 crontab lines | {cr[0]:.1f} MB | {cr[1]:.1f} MB | {cr[2]:.0f} ms |")
p(f"| bash loop: sleep to the minute, compare 100 entries (incl. `date`/`sleep` children) | {lp[0]:.1f} MB | {lp[1]:.1f} MB | {lp[2]:.0f} ms |")
p("")
p("CPU times come in clock ticks of "
  f"{1000 // tck} ms, so small values are ±{1000 // tck} ms.")
p("")
p("### Memory during a 20,000-file run")
p("")
p("Peak RSS (VmHWM, sampled every 20 ms until exit) during a full copy of the 20,000-file tree:")
p("")
p("| process | VmHWM |")
p("|---|---|")
p(f"| backupmanager (run-job, the runner the daemon uses) | {mb[0] / 1024:.1f} MB |")
p(f"| its rsync (the sender) | {mb[1] / 1024:.1f} MB |")
p(f"| rsync run by hand, same argv | {mraw / 1024:.1f} MB |")
p("")
p("rsync's file list dominates; backupmanager streams rsync's output line by line and keeps only "
  "a short tail, so its own memory does not grow with the number of files.")
p("")
p("### Snapshots (`mode: snapshot`)")
p("")
p("All local, on the same file system as everything else here. The source is the 20,000-file "
  "part of the data (100 directories × 200 × 1 KiB). The jobs are `mode: snapshot` with "
  "`retention: {keep_last: N}` and one sync; \"same rsync argv by hand\" is the argument "
  "vector backupmanager executed (captured by the `rsync` shim), with only the destination "
  "operand changed from `DEST/.incomplete-<id>/` to a fresh directory outside the series "
  "(rsync creates it), so both sides create one new directory and link against the same "
  "snapshot. A run also commits the snapshot, which starts with `syncfs(2)` on the series' "
  "file system (rsync does not fsync; see `src/snapshot/mod.rs`, *Crash safety*): the third "
  "line does the same by hand with `sync -f`, so it has the same durability.")


def phases_table(path, title):
    rows_ = []
    with open(path) as f:
        for l in f:
            if l.strip():
                rows_.append([float(x) for x in l.split()])
    if not rows_:
        return
    p("")
    p(f"{title} ({len(rows_)} runs; t0/t1 taken by the shell around the process, the rest are "
      "JSON log timestamps):")
    p("")
    p("| phase | median | min | max |")
    p("|---|---|---|---|")
    names = ["start → \"sync 0 starting\" (process start, config, run lock, begin: readdir + mkdir)",
             "rsync (\"sync 0 starting\" → \"sync 0 done\")",
             "commit (→ \"snapshot … complete\": syncfs, manifest + fsync, 2 renames, `latest`, dir fsync)",
             "retention (→ \"retention kept …\": list manifests, plan, nothing removed)",
             "exit (→ process gone)",
             "total"]
    for i, n in enumerate(names):
        a, b, c = mmm([r[i] for r in rows_])
        p(f"| {n} | {a} | {b} | {c} |")


table("snapfull", "snapshot: first snapshot (full copy of 20,000 files)",
      "The series is deleted before each backupmanager run, the by-hand directory before each "
      "by-hand run (`--prepare`, per command)."
      + paired_note("snapfull", "run-job", "argv by hand"))
phases_table(f"{W}/snap-phases-full.txt", "Where a first-snapshot run spends its time")
table("snapnochg", "snapshot: no change since the last snapshot",
      "Before each backupmanager run the series is reset to one complete snapshot (BASE: its "
      "directory, manifest and `latest`), so every run makes exactly one new snapshot with "
      "`--link-dest=BASE` (20,000 hard links, 100 directories) and retention (keep_last 3) "
      "removes nothing; the by-hand runs use the same `--link-dest=BASE` into a fresh directory."
      + paired_note("snapnochg", "run-job", "argv by hand"))
phases_table(f"{W}/snap-phases.txt", "Where a no-change run spends its time")
if srot:
    table("snaprot", "snapshot rotation vs rsnapshot",
          "Both hold 3 snapshots of the same tree before every run (steady state, no change in "
          "the source): backupmanager (`keep_last: 3`, opts `-a --delete --numeric-ids "
          "--delete-excluded`) makes a new snapshot hard-linked to the newest, commits it and "
          "removes the oldest; rsnapshot 1.4 (`retain alpha 3`, `link_dest 1`, no `sync_first`, "
          "`cmd_rm /bin/rm`, the same rsync options) removes `alpha.2`, rotates and rsyncs with "
          "`--link-dest=alpha.1`. rsnapshot does not flush the file system. Its commands for one "
          "run (`rsnapshot -t alpha`) are below the table."
          + paired_note("snaprot", "backupmanager", "rsnapshot"))
    p("")
    p("`rsnapshot -t alpha`:")
    p("")
    p("```")
    with open(f"{W}/rsnap-t.txt") as f:
        p(f.read().rstrip())
    p("```")
table("snapprune", "prune one snapshot",
      f"The series holds two complete snapshots; `keep_last: 1` removes the older one, a tree of "
      f"{int(E.get('NPRUNE') or 0):,} files, all hard links shared with the newer snapshot (as in "
      "any series, so removal unlinks and frees no data). Before each run it is recreated with "
      "`cp -al` from a template (same files) with its manifest; `rm -rf` gets an identical "
      "`cp -al` of the same template. `prune` also loads the config, takes the job's run lock, "
      "lists the manifests, renames the snapshot to `.deleting-<id>`, removes its manifest and "
      "fsyncs the series directory."
      + paired_note("snapprune", "prune", "rm -rf"))
table("snaplist", "list 1,000 snapshots",
      "One real run, then 999 copies of its snapshot (one hard-linked file each) with manifests "
      "made from its own (valid format 1, ids one hour apart, older), checked with "
      f"`snapshots --format json` ({E.get('NLIST', '?')} listed). Listing reads one directory and "
      "each manifest (no walk of snapshot trees). `ls` (one readdir, sorted names) is the floor.")
p("")
p("## Product changes made from these measurements")
p("")
p("- **Child exit noticed at once** (`rsync::exit_notice`, used by `ssh::run_remote` and "
  "`rsync::run`). `run_remote` used to poll `try_wait` with a nap doubling from 1 ms to 20 ms, "
  "and `rsync::run` slept 10 ms between reap attempts, so every remote lock operation (a "
  "multiplexed ssh command takes ~10 ms) paid up to ~16 ms of oversleep and every rsync up to "
  "10 ms. Now a helper thread blocks in `waitid(WEXITED | WNOWAIT)` and the caller waits on a "
  "channel with the deadline as timeout; the child stays unreaped until the caller reaps it, so "
  "the kill-on-timeout path still cannot hit a reused pid. Measured side by side with the "
  "previous binary (one hyperfine invocation each, 2026-11-22, this machine): `run-job` of a "
  "1-file remote job 88.5 → 78.2 ms (mean of 30), the same job with 2 lock files and a remote "
  "blocker 151.9 → 127.0 ms, and the per-check cost of a warm remote lock check "
  "((10 − 0 blockers)/10, `--quick` run) 16.4 → 11.5 ms. Run with "
  "`BENCH_BASELINE=/path/to/old/backupmanager scripts/bench` to put the previous binary next to "
  "the current one in the fixed-overhead and lock-check tables.")
p("- **A remote blocker removed during its check no longer fails the run** (`lock.rs`, "
  "`OBSERVE_SCRIPT`). The remote check ran `[ -e P ]` and then `stat` and `head` on P; when "
  "the blocker's owner released it between the two (precisely the hand-off this benchmark "
  "times), `head` failed and the run ended with \"cannot check blocker: remote command failed "
  "(exit 1): head: cannot open …\". The remote-blocker hand-off loop hit it in 1 of 11 "
  "repetitions. Now a file that vanishes between the test and the reads is reported absent "
  "(as the local check already did), and one that stays but cannot be read counts as present "
  "with an unknown holder (also as locally). A unit test runs the script through `sh`. (The "
  "same bug was fixed in parallel on main; the merge kept main's script, which behaves the same "
  "for these cases and passes that test.)")
p("")
p("## Not measured, or measured with a caveat")
p("")
p("- Host cron: see *Schedule accuracy* (documented behaviour cited; busybox crond measured instead).")
p("- \"Remote\" is loopback: network latency and bandwidth of a real link are not in these numbers; "
  "the ratios isolate backupmanager's own cost, which is what the targets are about.")
p("- Memory is measured on `run-job`, which runs the same `runner::run_job` as the daemon; the "
  "idle daemon's own RSS is in the idle table.")
print("\n".join(out))
