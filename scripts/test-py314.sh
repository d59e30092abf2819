#!/usr/bin/env bash
# Runs the capture and attach tests on CPython 3.14, which this machine image lacks:
# Debian's `sid` suite carries it, so a minimal sid root is made with debootstrap (once,
# kept under target/) and the tests run inside it with chroot. The project's checkout
# and the host's Rust toolchain are bind-mounted in; the wheel is built there against
# sid's python3.14.
#
#   bash scripts/test-py314.sh              # set up if needed, build, run the tests
#   HEAPSIGHT_PY314=skip bash ...           # do nothing (machines without root or network)
#   HEAPSIGHT_PY314_ROOT=/path bash ...     # keep the sid root elsewhere
#   bash scripts/test-py314.sh test_capture.py -k frames   # pytest arguments (from tests/)
#   bash scripts/test-py314.sh --run 'python -c "import heapsight"'   # a command, after the build
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
if [ "${HEAPSIGHT_PY314:-}" = skip ]; then
  echo "CPython 3.14 tests skipped (HEAPSIGHT_PY314=skip)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "error: the CPython 3.14 tests need root (debootstrap and chroot); run as root or" \
       "set HEAPSIGHT_PY314=skip" >&2
  exit 2
fi
root=${HEAPSIGHT_PY314_ROOT:-$repo/target/py314-root}
mkdir -p "$(dirname "$root")"
# One run at a time per root: a second would mount over the first one's /proc and /tmp.
exec 9>"$root.lock"
if ! flock -n 9; then
  echo "== another run uses $root; waiting for it"
  flock 9
fi
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# python3.13 and gdb: attaching from 3.14 to an older interpreter goes through gdb.
packages=python3.14,python3.14-dev,python3.14-venv,python3.13,gdb,gcc,libc6-dev,ca-certificates,procps

if [ ! -x "$root/usr/bin/python3.14" ]; then
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  echo "== making a Debian sid root with CPython 3.14 in $root (once; about 2 minutes)"
  rm -rf "$root.partial"
  # Into a side directory first: an interrupted debootstrap never looks like a ready root.
  debootstrap --variant=minbase --include="$packages" sid "$root.partial" "$mirror" \
    >"$repo/target/py314-debootstrap.log" 2>&1 || {
      echo "error: debootstrap of Debian sid failed; see target/py314-debootstrap.log" >&2
      tail -5 "$repo/target/py314-debootstrap.log" >&2
      exit 2
    }
  rm -rf "$root"
  mv "$root.partial" "$root"
fi

# Mounts left behind by a run that was killed: the lock is ours, so none is in use.
awk -v under="$root/" 'index($2, under) == 1 { print $2 }' /proc/mounts | sort -r |
  while read -r stale; do umount -l "$stale" 2>/dev/null || true; done

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM
bind() {  # bind SRC DEST-inside-root
  mkdir -p "$root$2"
  mount --bind "$1" "$root$2"
  mounted+=("$root$2")
}
mkdir -p "$root/proc" "$root/sys"
mount -t proc proc "$root/proc"; mounted+=("$root/proc")
mount -t sysfs sysfs "$root/sys"; mounted+=("$root/sys")
bind /dev /dev
bind /dev/pts /dev/pts
mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
mount -t tmpfs tmpfs "$root/tmp"; mounted+=("$root/tmp")
bind "$repo" /src
rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
cargo_home=${CARGO_HOME:-$HOME/.cargo}
bind "$rustup_home" /opt/rustup
bind "$cargo_home" /opt/cargo
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's CA bundle: registries may be reached through a proxy that only it trusts.
host_ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
cp "$host_ca" "$root/etc/ssl/host-ca.crt"

# Tests to run: the capture tests (as on every other interpreter), attach, whose 3.14
# path is sys.remote_exec (PEP 768) instead of gdb, and `run` on real servers.
tests=(test_capture.py test_shims.py test_api.py test_layout_headers.py test_fork_snapshot.py
       e2e/test_attach.py e2e/test_run.py)
[ $# -gt 0 ] && tests=("$@")
chroot "$root" /usr/bin/env -i HOME=/root PATH=/opt/cargo/bin:/usr/bin:/bin:/usr/sbin:/sbin \
  RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo CARGO_TARGET_DIR=/src/target/py314 \
  LANG=C.UTF-8 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
  PIP_CERT=/etc/ssl/host-ca.crt SSL_CERT_FILE=/etc/ssl/host-ca.crt \
  CARGO_HTTP_CAINFO=/etc/ssl/host-ca.crt \
  /bin/bash -euo pipefail -c '
    venv=/opt/venv-3.14
    [ -x $venv/bin/python ] || python3.14 -m venv $venv
    $venv/bin/pip install -q "maturin>=1.7,<2" -r /src/tests/requirements.txt
    echo "== CPython $($venv/bin/python -c "import sys; print(sys.version.split()[0])") (Debian sid, chroot)"
    cd /src
    rm -rf target/wheels-3.14
    $venv/bin/maturin build -q -i $venv/bin/python -o target/wheels-3.14
    $venv/bin/pip install -q --force-reinstall --no-deps target/wheels-3.14/heapsight-*.whl
    cd tests
    if [ "$1" = --run ]; then
      shift
      PATH=$venv/bin:$PATH bash -c "$*"
    else
      $venv/bin/python -m pytest -q -p no:cacheprovider "$@"
    fi
  ' py314 "${tests[@]}" 9>&-
