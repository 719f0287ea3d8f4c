# shellcheck shell=bash
# bench-lib.sh — helpers for scripts/bench (sourced, not run).
#
# bench_sshd_up DIR PORT: start a private, throw-away sshd on 127.0.0.1:PORT (never the system
#   one) with its own host key, client key and known_hosts under DIR, as tests/support/mod.rs does.
#   Root's ~/.bashrc is hidden from its sessions by an empty file bind-mounted over it inside
#   sshd's private mount namespace (`unshare --mount`): Debian's bash sources ~/.bashrc for every
#   `ssh host CMD`, which would add the shell's start-up cost to every remote command measured.
#   Sets SSHD_PID, SSH_KEY, SSH_KNOWN_HOSTS, SSHD_PORT.
# bench_sshd_down DIR: stop that sshd by its pid file (and nothing else).

bench_sshd_up() {
  local dir=$1 port=$2
  mkdir -p "$dir" /run/sshd
  chmod 0755 /run/sshd
  [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C bm-bench-host -f "$dir/host_ed25519"
  [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C bm-bench-client -f "$dir/client_ed25519"
  cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
  cat > "$dir/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxStartups 100:30:200
MaxSessions 64
LogLevel ERROR
CFG
  echo "[127.0.0.1]:$port $(awk '{print $1" "$2}' "$dir/host_ed25519.pub")" > "$dir/known_hosts"
  /usr/sbin/sshd -t -f "$dir/sshd_config" || { echo "bench: sshd -t rejected $dir/sshd_config" >&2; return 1; }
  rm -f "$dir/sshd.pid"
  : > "$dir/empty-bashrc"
  local binds=()
  [ -f /root/.bashrc ] && binds+=("$dir/empty-bashrc:/root/.bashrc")
  # shellcheck disable=SC2016
  local launch='for b in "$@"; do case "$b" in --) shift; break ;; esac; mount --bind "${b%%:*}" "${b#*:}" || exit 1; shift; done; exec "$@"'
  unshare --mount --propagation slave sh -c "$launch" sh ${binds[@]+"${binds[@]}"} -- \
    /usr/sbin/sshd -f "$dir/sshd_config" -E "$dir/sshd.log"
  local _i
  for _i in $(seq 1 100); do [ -s "$dir/sshd.pid" ] && break; sleep 0.05; done
  [ -s "$dir/sshd.pid" ] || { cat "$dir/sshd.log" >&2; echo "bench: sshd did not start" >&2; return 1; }
  SSHD_PID=$(cat "$dir/sshd.pid")
  SSH_KEY=$dir/client_ed25519
  SSH_KNOWN_HOSTS=$dir/known_hosts
  SSHD_PORT=$port
  # The command a user would type for a fresh connection each time (no multiplexing).
  SSH_PLAIN="ssh -p $port -i $SSH_KEY -o IdentitiesOnly=yes -o UserKnownHostsFile=$SSH_KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes -o ControlMaster=no -o ControlPath=none"
  $SSH_PLAIN root@127.0.0.1 true || { cat "$dir/sshd.log" >&2; echo "bench: ssh round trip failed" >&2; return 1; }
}

bench_sshd_down() {
  local dir=$1 pid
  [ -s "$dir/sshd.pid" ] || return 0
  pid=$(cat "$dir/sshd.pid")
  # Only our sshd: its pid file names it and its command line carries our config.
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$dir/sshd_config"; then
    kill "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/sshd.pid"
}
