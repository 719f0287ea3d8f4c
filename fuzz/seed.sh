#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the repo's configs. The corpus is never committed (gitignored);
# rerunning adds the seeds again (libFuzzer names files by content, so nothing is duplicated).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

c="$here/corpus/config_load"
mkdir -p "$c"
n=0
for f in examples/*.yaml config/backupmanager.yaml; do
  [ -f "$f" ] || continue
  cp "$f" "$c/seed-$(echo "$f" | tr '/' '_')"; n=$((n + 1))
done
while IFS= read -r -d '' f; do
  cp "$f" "$c/seed-$(echo "$f" | tr '/' '_')"; n=$((n + 1))
done < <(find tests/fixtures/invalid tests/fixtures/fuzz -name '*.yaml' -print0 2>/dev/null)
# Main file + drop-in joined by a NUL (the config_load target's input layout).
for d in tests/fixtures/invalid/*/; do
  [ -f "$d/backupmanager.yaml" ] || continue
  for drop in "$d"jobs.d/*.yaml; do
    [ -f "$drop" ] || continue
    { cat "$d/backupmanager.yaml"; printf '\0'; cat "$drop"; } \
      > "$c/seed-pair-$(basename "$d")-$(basename "$drop")"; n=$((n + 1))
  done
done

s="$here/corpus/small_parsers"
mkdir -p "$s"
i=0
seed() { printf "$1%s" "$2" > "$s/seed-$i"; i=$((i + 1)); }
# \x00 words::split, \x01 duration::parse, \x02 Schedule::parse
for w in "-av" "--exclude '.cache'" "--filter=\"- *.tmp\"" 'a\ b' "''" "-avze ssh" "--delete-after"; do
  seed '\x00' "$w"
done
for w in "300" "5m" "1h 30m" "2d" "45s" " 10 min " "0" "1.5h"; do seed '\x01' "$w"; done
for w in "0 2 * * *" "*/15 * * * *" "@daily" "@reboot" "30 2 1-15 JAN-MAR MON-FRI" "0 0 L * *"; do
  seed '\x02' "$w"
done
echo "seeded $n config files into $c and $i strings into $s"
