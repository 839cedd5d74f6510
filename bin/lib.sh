# shellcheck shell=bash
# Helpers shared by bin/up and bin/test. Source it, don't run it: it only defines functions and
# a few variables. Written for Debian (apt, dpkg, pg_ctlcluster); the checks come first, so a
# machine that already has everything does no installing at all.

# The callers set these too; repeated so that the helpers behave the same whoever sources them.
set -euo pipefail

VC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VC_VENV="$VC_ROOT/.venv"
VC_MIN_PYTHON="3.11"

# What the gateway itself runs: the media engine links libsrt and uses ffmpeg.
# shellcheck disable=SC2034 # used by the scripts that source this file
VC_RUNTIME_PACKAGES=(ffmpeg libsrt1.5-openssl)
# What the tests add: real SRT peers (srt-live-transmit) to send and receive streams, the Redis
# server binary, which some tests run privately to restart it under running pipelines, and ip
# (iproute2), with which the multicast tests build network namespaces of their own, and the
# browser the UI tests drive through Playwright (Debian's chromium: Playwright downloads none).
# shellcheck disable=SC2034 # used by the scripts that source this file
VC_TEST_PACKAGES=(srt-tools redis-server iproute2 chromium)

VC_APT_UPDATED=0

vc_section() {
  printf '\n==> %s\n' "$*"
}

vc_die() {
  printf '\nerror: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# Debian packages

vc_missing_packages() {
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$package"
    fi
  done
}

# The command prefix that runs something as root, or nothing usable (non-zero) when there is none.
vc_root_prefix() {
  if [ "$(id -u)" -eq 0 ]; then
    return 0
  elif command -v sudo >/dev/null 2>&1; then
    printf 'sudo\n'
  else
    return 1
  fi
}

vc_as_root() {
  local prefix
  prefix="$(vc_root_prefix)" || vc_die "'$*' needs root, and this user is not root and has no sudo."
  if [ -n "$prefix" ]; then
    "$prefix" "$@"
  else
    "$@"
  fi
}

vc_apt_install() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    printf 'Not a Debian system: make sure these are installed: %s\n' "$*"
    return 0
  fi
  local missing
  mapfile -t missing < <(vc_missing_packages "$@")
  if [ "${#missing[@]}" -eq 0 ]; then
    printf 'Already installed: %s\n' "$*"
    return 0
  fi
  vc_root_prefix >/dev/null ||
    vc_die "missing Debian packages: ${missing[*]}. Installing them needs root or sudo; run: apt-get install ${missing[*]}"
  printf 'Installing: %s\n' "${missing[*]}"
  # A fresh machine's package lists may be empty or old; refresh them once per run, and only
  # when something is actually missing.
  if [ "$VC_APT_UPDATED" -eq 0 ]; then
    vc_as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
    VC_APT_UPDATED=1
  fi
  vc_as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
    install --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------------------------------------
# Python and the project's virtualenv

vc_python_is_recent() {
  "$1" -c "import sys; sys.exit(0 if sys.version_info >= (${VC_MIN_PYTHON/./, }) else 1)" >/dev/null 2>&1
}

# Prints the path of a Python >= VC_MIN_PYTHON. VAJRACAST_PYTHON picks one explicitly.
vc_pick_python() {
  local candidate
  for candidate in "${VAJRACAST_PYTHON:-}" python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
    [ -n "$candidate" ] || continue
    command -v "$candidate" >/dev/null 2>&1 || continue
    if vc_python_is_recent "$candidate"; then
      # The interpreter itself, not a version-manager shim that may point elsewhere tomorrow.
      "$candidate" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

vc_venv_works() {
  [ -x "$VC_VENV/bin/python" ] && vc_python_is_recent "$VC_VENV/bin/python" &&
    "$VC_VENV/bin/python" -m pip --version >/dev/null 2>&1
}

vc_create_venv() {
  local python
  python="$(vc_pick_python)" ||
    vc_die "no Python ${VC_MIN_PYTHON} or newer found (tried python3, python3.1x, /usr/bin/python3; or set VAJRACAST_PYTHON)."
  printf 'Creating %s with %s\n' "$VC_VENV" "$python"
  rm -rf "$VC_VENV"
  if "$python" -m venv "$VC_VENV"; then
    return 0
  fi
  # Debian's own Python ships venv's pip bootstrap in a separate package.
  rm -rf "$VC_VENV"
  printf 'This Python cannot create a virtualenv without python3-venv.\n'
  vc_apt_install python3-venv
  "$python" -m venv "$VC_VENV" || vc_die "could not create a virtualenv with $python."
}

vc_requirements_hash() {
  # Every requirements file, since one includes another with -r.
  cat "$VC_ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1
}

# Makes .venv and installs the given requirements file into it, only when the requirements
# changed since the last successful install (a stamp per requirements file, kept in the venv).
vc_ensure_venv() {
  local requirements="$1"
  if ! vc_venv_works; then
    vc_create_venv
  fi
  local stamp="$VC_VENV/.installed-${requirements%.txt}.sha256"
  local wanted
  wanted="$(vc_requirements_hash)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    printf '%s is up to date with %s\n' "$VC_VENV" "$requirements"
  else
    "$VC_VENV/bin/python" -m pip install --disable-pip-version-check --no-input --progress-bar off \
      -r "$VC_ROOT/$requirements"
    printf '%s\n' "$wanted" >"$stamp"
  fi
  export VIRTUAL_ENV="$VC_VENV"
  export PATH="$VC_VENV/bin:$PATH"
}

# ---------------------------------------------------------------------------------------------
# Local services

# Polls a check until it succeeds, or stops the script after the timeout with a clear message.
vc_wait_for() {
  local what="$1" timeout_s="$2"
  shift 2
  local deadline=$((SECONDS + timeout_s))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      vc_die "$what did not answer within ${timeout_s}s."
    fi
    sleep 1
  done
}

vc_tcp_open() {
  timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
}

# True when a URL such as postgres://user:pass@127.0.0.1:5432/db names this machine's default port.
vc_url_is_local() {
  local url="$1" default_port="$2"
  local pattern='^[a-z+]+://([^@/]*@)?([^:/?]*)(:([0-9]+))?'
  [[ "$url" =~ $pattern ]] || return 1
  local host="${BASH_REMATCH[2]}" port="${BASH_REMATCH[4]:-$default_port}"
  [[ "$host" =~ ^(127\.0\.0\.1|localhost)?$ ]] && [ "$port" = "$default_port" ]
}

vc_postgres_answers() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h 127.0.0.1 -p 5432 -t 3
  else
    vc_tcp_open 127.0.0.1 5432
  fi
}

vc_start_postgres() {
  vc_apt_install postgresql
  local version
  # Prefer an existing cluster on the standard port; otherwise the newest installed server.
  version="$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1; exit }')"
  if [ -z "$version" ]; then
    version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
    [ -n "$version" ] || vc_die "postgresql is installed but no server version was found in /usr/lib/postgresql."
    if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
      vc_as_root pg_createcluster --port 5432 "$version" main
    fi
  fi
  printf 'Starting PostgreSQL %s (cluster main)\n' "$version"
  vc_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
    printf 'pg_ctlcluster did not start it (perhaps already starting); waiting for it anyway\n'
  vc_wait_for "PostgreSQL on 127.0.0.1:5432" 60 vc_postgres_answers
  # A fresh Debian cluster asks for a password over TCP; give the postgres role a known one.
  vc_as_root su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\""
}

# promtool, Prometheus' rule checker, which the tests run on the shipped alert rules. Only that one
# binary is unpacked from Debian's prometheus package into the virtualenv: installing the package
# would also install, and start, a Prometheus server.
vc_ensure_promtool() {
  if [ -x "$VC_VENV/bin/promtool" ]; then
    printf 'promtool: %s\n' "$("$VC_VENV/bin/promtool" --version 2>&1 | head -n 1)"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    printf 'Not a Debian system: put promtool (from Prometheus) into %s/bin for the rule tests.\n' "$VC_VENV"
    return 0
  fi
  local work
  work="$(mktemp -d)"
  chmod 0755 "$work" # apt downloads as its own unprivileged user when run as root
  if ! (cd "$work" && apt-get -q download prometheus); then
    vc_as_root env DEBIAN_FRONTEND=noninteractive apt-get -q update
    VC_APT_UPDATED=1
    (cd "$work" && apt-get -q download prometheus) || vc_die "could not download Debian's prometheus package for promtool."
  fi
  dpkg-deb -x "$work"/prometheus_*.deb "$work/unpacked"
  install -m 0755 "$work/unpacked/usr/bin/promtool" "$VC_VENV/bin/promtool"
  rm -rf "$work"
  printf 'promtool: %s\n' "$("$VC_VENV/bin/promtool" --version 2>&1 | head -n 1)"
}

vc_ensure_postgres() {
  if vc_postgres_answers; then
    printf 'PostgreSQL answers on 127.0.0.1:5432\n'
  else
    vc_start_postgres
  fi
}

vc_redis_answers() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]
  else
    vc_tcp_open 127.0.0.1 6379
  fi
}

vc_start_redis() {
  vc_apt_install redis-server
  printf 'Starting Redis on 127.0.0.1:6379 (in memory only)\n'
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  vc_wait_for "Redis on 127.0.0.1:6379" 30 vc_redis_answers
}

vc_ensure_redis() {
  if vc_redis_answers; then
    printf 'Redis answers on 127.0.0.1:6379\n'
  else
    vc_start_redis
  fi
}
