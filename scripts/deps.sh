# Sourced by scripts/test, scripts/demo, scripts/package and scripts/test-deb: installs the
# system tools backupmanager and its tests use, with apt-get, when they are missing. A fresh
# Debian/Ubuntu machine has none of them.
bm_need_tools() {
  local missing=()
  command -v rsync >/dev/null || missing+=(rsync)
  command -v ssh >/dev/null || missing+=(openssh-client)
  command -v ssh-keygen >/dev/null || missing+=(openssh-client)
  [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
  command -v unshare >/dev/null || missing+=(util-linux)
  command -v setpriv >/dev/null || missing+=(util-linux)   # lock tests run a check as nobody
  command -v script >/dev/null || missing+=(bsdutils)      # run-job on a pseudo-terminal
  command -v ip >/dev/null || missing+=(iproute2)
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v curl >/dev/null || missing+=(curl)             # web API tests (unix socket, TCP)
  [ -x /usr/bin/chromium ] || missing+=(chromium)          # web page tests (headless, DevTools pipe)
  command -v tar >/dev/null || missing+=(tar)               # mode: archive (GNU tar)
  command -v zstd >/dev/null || missing+=(zstd)             # mode: archive (default compressor)
  command -v gzip >/dev/null || missing+=(gzip)             # mode: archive, compression: gzip
  [ -x /usr/bin/rrsync ] || missing+=(rsync)               # the gate is compared with rrsync -ro
  command -v python3 >/dev/null || missing+=(python3)      # rrsync is a Python script
  command -v etcd >/dev/null || missing+=(etcd-server)      # tests/etcd.rs: a 3-member cluster
  command -v etcdctl >/dev/null || missing+=(etcd-client)
  command -v sqlite3 >/dev/null || missing+=(sqlite3)       # dumps: the sqlite dump test
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)   # dumps: a real server
  command -v promtool >/dev/null || missing+=(prometheus)   # metrics: promtool check metrics
  command -v socat >/dev/null || missing+=(socat)           # notify: a TLS terminator for the HTTPS test
  command -v openssl >/dev/null || missing+=(openssl)       # notify: the test CA
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  echo "installing: ${missing[*]}" >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# cargo-deb, for scripts/package. `cargo install` builds it from crates.io (about 1.5 minutes
# on 2 cores).
bm_need_cargo_deb() {
  command -v cargo-deb >/dev/null && return 0
  echo "installing cargo-deb (cargo install cargo-deb --locked)" >&2
  cargo install cargo-deb --locked >&2
}
