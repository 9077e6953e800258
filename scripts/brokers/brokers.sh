#!/usr/bin/env bash
# Real brokers on loopback, without Docker: `brokers.sh up [NAME…] | down [NAME…] | status | logs NAME`
# | ctl rabbitmq ARGS… (rabbitmqctl against our node, e.g. `ctl rabbitmq stop_app`, for fault tests).
# See docs/brokers.md. Installs go to $SWITCHYARD_CACHE/brokers (outside the tracked tree), every
# broker binds 127.0.0.1, `up` waits for a real round trip (probe.mjs), `down` stops only the processes
# whose pid files we wrote and whose environment still carries our marker.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CONF="$HERE/conf"
# shellcheck source=../env.sh
. "$ROOT/scripts/env.sh" >&2
CACHE="$SWITCHYARD_CACHE/brokers"
RUN="$CACHE/run"
DATA="$CACHE/data"
mkdir -p "$RUN" "$DATA"

ALL=(kafka rabbitmq activemq elasticmq moto pubsub postgres servicebus)
CI_MODE=0
case "${CI:-}" in true | 1) CI_MODE=1 ;; esac
UP_TIMEOUT="${SWITCHYARD_BROKER_TIMEOUT:-150}" # seconds per broker for start + round trip
KAFKA_VERSION=4.4.0
ELASTICMQ_VERSION=1.7.1
MOTO_VERSION=5.2.5
PG_MAJOR=15

say() { printf '[brokers] %s\n' "$*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

# ---------- per-broker facts ----------
ports_of() {
  case "$1" in
  kafka) echo "9092 9093 9094" ;;
  rabbitmq) echo "5672 61613 15672" ;;
  activemq) echo "61614 61616" ;;
  elasticmq) echo 9324 ;;
  moto) echo 4566 ;;
  pubsub) echo 8085 ;;
  postgres) echo 5433 ;;
  servicebus) echo "5673 5674" ;;
  esac
}
deb_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "-"; }
version_of() {
  case "$1" in
  kafka) echo "$KAFKA_VERSION" ;;
  rabbitmq) deb_version rabbitmq-server ;;
  activemq) deb_version activemq ;;
  elasticmq) echo "$ELASTICMQ_VERSION" ;;
  moto) echo "$MOTO_VERSION" ;;
  pubsub) deb_version google-cloud-cli-pubsub-emulator ;;
  postgres) deb_version "postgresql-$PG_MAJOR" ;;
  servicebus) node -p "require('$ROOT/emulators/servicebus/package.json').version" 2>/dev/null || echo "-" ;;
  esac
}
# Signal that stops the broker cleanly (postgres: SIGINT = fast shutdown; others: SIGTERM).
stop_signal_of() { [ "$1" = postgres ] && echo INT || echo TERM; }
is_known() {
  local n
  for n in "${ALL[@]}"; do [ "$n" = "$1" ] && return 0; done
  return 1
}

# ---------- process bookkeeping ----------
pidfile() { echo "$RUN/$1.pid"; }
logfile() { echo "$RUN/$1.log"; }
marker() { echo "SWITCHYARD_BROKER=$1@$CACHE"; }

# True when PID exists and is not a zombie (pid 1 reaps orphans, sometimes late).
alive() { [ -n "$1" ] && [ -d "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# True when PID runs and carries our marker in its environment (set when we launched it), so a pid
# that the kernel reused for another program is never taken for ours.
pid_is_ours() {
  local pid=$1 name=$2
  [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
  { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qxF "$(marker "$name")"
}

# Prints the pid of our running broker NAME, or nothing (cleaning a stale pid file on the way).
running_pid() {
  local name=$1 f pid
  f=$(pidfile "$name")
  [ -f "$f" ] || return 0
  pid=$(cat "$f" 2>/dev/null)
  if pid_is_ours "$pid" "$name"; then
    echo "$pid"
  else
    if alive "$pid"; then
      say "$name: pid file names $pid, which is now another program ($(tr '\0' ' ' <"/proc/$pid/cmdline" | cut -c1-80)); not touching it, removing the stale pid file"
    fi
    rm -f "$f"
  fi
}

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
port_owner() { ss -ltnpH "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*",pid=[0-9]*\).*/\1/p' | head -1; }

# launch NAME CMD… : start CMD in its own session (pgid = pid), stdout+stderr to the log, pid file.
launch() {
  local name=$1
  shift
  local log
  log=$(logfile "$name")
  printf '\n===== %s starting %s =====\n' "$(date -Is)" "$name" >>"$log"
  # 9>&-: the broker must not inherit up_one's lock fd (it would hold the lock for its whole life).
  env "$(marker "$name")" setsid "$@" >>"$log" 2>&1 </dev/null 9>&- &
  local pid=$! i
  echo "$pid" >"$(pidfile "$name")"
  # Until the forked shell has exec'd, its /proc environ lacks the marker: wait for the exec (or death).
  for ((i = 0; i < 100; i++)); do
    pid_is_ours "$pid" "$name" || ! alive "$pid" && break
    sleep 0.05
  done
}

# Members of process group PGID (what is left of a broker after its main process).
# (zombies excluded: they are already dead, waiting for pid 1 to reap them)
group_members() { ps -e -o pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ { print $1 }'; }

stop_one() {
  local name=$1 f pid sig i left
  f=$(pidfile "$name")
  pid=$(cat "$f" 2>/dev/null)
  if [ -z "$pid" ]; then
    say "$name: not running (no pid file)"
    [ "$name" = rabbitmq ] && stop_epmd
    return 0
  fi
  if pid_is_ours "$pid" "$name"; then
    sig=$(stop_signal_of "$name")
    say "$name: stopping pid $pid (SIG$sig)"
    kill "-$sig" "$pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do
      [ -d "/proc/$pid" ] || break
      [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
      sleep 0.1
    done
    if [ -d "/proc/$pid" ] && pid_is_ours "$pid" "$name"; then
      say "$name: still running after 30 s, SIGKILL"
      kill -KILL "$pid" 2>/dev/null
    fi
    sleep 0.2
  elif alive "$pid"; then
    say "$name: pid $pid from the pid file is now another program; not touching it"
    rm -f "$f"
    return 0
  else
    say "$name: pid $pid is gone (stale pid file)"
  fi
  # Leftovers of the broker's process group (it was started with setsid, so pgid = pid). A group id is
  # never handed out again while any member of the group lives, so these are ours.
  left=$(group_members "$pid")
  if [ -n "$left" ]; then
    say "$name: ending leftover processes of its group: $(echo "$left" | tr '\n' ' ')"
    kill -TERM -- "-$pid" 2>/dev/null
    sleep 1
    kill -KILL -- "-$pid" 2>/dev/null
  fi
  rm -f "$f"
  [ "$name" = rabbitmq ] && stop_epmd
  return 0
}

# ---------- installs (each: completion marker; a folder without it is half-installed and redone) ----------
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "$2"; }

mvn_install() { # NAME VERSION POMDIR → $CACHE/NAME-VERSION/lib
  local name=$1 version=$2 pomdir=$3 dest="$CACHE/$1-$2" tmp
  [ -f "$dest/.complete" ] && return 0
  need_cmd java "$name needs Java 17+: apt-get install openjdk-17-jre-headless"
  need_cmd mvn "$name is installed from Maven Central with Maven: apt-get install maven"
  [ -d "$dest" ] && say "$name: $dest is half-installed (no .complete marker); reinstalling"
  rm -rf "$dest"
  tmp=$(mktemp -d "$CACHE/.tmp-$name-XXXXXX")
  say "$name: installing $version jars from Maven Central into $dest"
  if ! mvn -B -q -f "$pomdir/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$tmp/lib" >"$tmp/mvn.log" 2>&1; then
    tail -20 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "$name: Maven could not fetch the jars (see above)"
  fi
  touch "$tmp/.complete"
  mv "$tmp" "$dest" # same filesystem: atomic
}

apt_install() { # PKG… (only the missing ones)
  local missing=() p
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    die "missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$RUN/apt.log" 2>&1; then
    apt-get update >>"$RUN/apt.log" 2>&1
    apt-get install -y --no-install-recommends "${missing[@]}" >>"$RUN/apt.log" 2>&1 ||
      {
        tail -20 "$RUN/apt.log" >&2
        die "apt-get install ${missing[*]} failed (log: $RUN/apt.log)"
      }
  fi
}

install_moto() {
  local dest="$CACHE/moto-$MOTO_VERSION" py
  [ -f "$dest/.complete" ] && return 0
  py=$(command -v python3) || die "moto needs python3 (with venv): apt-get install python3-venv"
  [ -d "$dest" ] && say "moto: $dest is half-installed; reinstalling"
  rm -rf "$dest"
  say "moto: creating a virtualenv with moto[server]==$MOTO_VERSION in $dest"
  if ! { "$py" -m venv "$dest" && "$dest/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"; } >"$RUN/moto-install.log" 2>&1; then
    tail -20 "$RUN/moto-install.log" >&2
    rm -rf "$dest"
    die "moto: install failed (log: $RUN/moto-install.log)"
  fi
  touch "$dest/.complete"
}

pubsub_launcher() {
  local l
  l=$(dpkg -L google-cloud-cli-pubsub-emulator 2>/dev/null | grep '/platform/pubsub-emulator/bin/cloud-pubsub-emulator$' | head -1)
  if [ -z "$l" ] && command -v gcloud >/dev/null 2>&1; then
    l="$(gcloud info --format='value(installation.sdk_root)' 2>/dev/null)/platform/pubsub-emulator/bin/cloud-pubsub-emulator"
  fi
  [ -n "$l" ] && [ -x "$l" ] && echo "$l"
}

pg_bin() { echo "/usr/lib/postgresql/$PG_MAJOR/bin"; }
# Postgres refuses to run as root: as root it runs as the system user `postgres`, and its cluster
# must then live where that user can reach (the cache under /root is not): /var/tmp/switchyard-postgres.
pg_dir() {
  if [ "$(id -u)" = 0 ] && ! setpriv --reuid=postgres --regid=postgres --init-groups test -x "$DATA" 2>/dev/null; then
    echo "${SWITCHYARD_PG_DIR:-/var/tmp/switchyard-postgres}"
  else
    echo "${SWITCHYARD_PG_DIR:-$DATA/postgres}"
  fi
}
as_pg() {
  if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi
}

# ---------- start one broker (install, launch, no wait) ----------
start_cmd() {
  local name=$1
  case "$name" in
  kafka)
    local home="$CACHE/kafka-$KAFKA_VERSION" dir="$DATA/kafka"
    mvn_install kafka "$KAFKA_VERSION" "$CONF/kafka"
    mkdir -p "$dir"
    # Configs are copied out of the work tree, so a running broker does not depend on a checkout.
    sed "s|@LOG_DIR@|$dir/logs|" "$CONF/kafka/server.properties" >"$dir/server.properties"
    cp "$CONF/kafka/log4j2.properties" "$dir/log4j2.properties"
    if [ ! -f "$dir/logs/meta.properties" ]; then
      rm -rf "$dir/logs"
      local id
      id=$(java -cp "$home/lib/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool random-uuid 2>>"$(logfile kafka)" | tail -1)
      java -cp "$home/lib/*" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.tools.StorageTool \
        format --standalone -t "$id" -c "$dir/server.properties" >>"$(logfile kafka)" 2>&1 ||
        {
          rm -rf "$dir/logs"
          die "kafka: formatting the log dir failed (see pnpm brokers logs kafka)"
        }
    fi
    # 1 GiB: each partition costs the broker heap, and a day of suites (a few thousand topics of 3
    # partitions) filled 512 MiB until the broker spent its time in full GCs and stopped answering.
    launch kafka java -Xms128m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$home/lib/*" kafka.Kafka "$dir/server.properties"
    ;;
  elasticmq)
    mvn_install elasticmq "$ELASTICMQ_VERSION" "$CONF/elasticmq"
    mkdir -p "$DATA/elasticmq"
    cp "$CONF/elasticmq/elasticmq.conf" "$DATA/elasticmq/elasticmq.conf"
    launch elasticmq java -Xms64m -Xmx256m -Dconfig.file="$DATA/elasticmq/elasticmq.conf" \
      -cp "$CACHE/elasticmq-$ELASTICMQ_VERSION/lib/*" org.elasticmq.server.Main
    ;;
  moto)
    install_moto
    launch moto "$CACHE/moto-$MOTO_VERSION/bin/moto_server" -H 127.0.0.1 -p 4566
    ;;
  pubsub)
    local l
    l=$(pubsub_launcher) || die "pubsub: Google's Pub/Sub emulator is not installed (Debian package google-cloud-cli-pubsub-emulator, from Google's apt source, part of this machine kind's base image). Install it (apt-get install google-cloud-cli-pubsub-emulator, or gcloud components install pubsub-emulator), or point PUBSUB_EMULATOR_HOST at one you run. Google's Go fake pstest is a documented fallback with known defects (docs/brokers.md)."
    JAVA_OPTS="-Xms64m -Xmx1g" launch pubsub "$l" --host=127.0.0.1 --port=8085
    ;;
  activemq)
    local inst="$DATA/activemq"
    mkdir -p "$inst/conf" "$inst/data" "$inst/tmp"
    cp "$CONF/activemq/activemq.xml" "$CONF/activemq/log4j2.properties" "$CONF/activemq/log4j.properties" "$inst/conf/"
    launch activemq java -Xms64m -Xmx384m -Djava.awt.headless=true \
      -Dorg.apache.activemq.UseDedicatedTaskRunner=false \
      -Dactivemq.home=/usr/share/activemq -Dactivemq.base="$inst" -Dactivemq.conf="$inst/conf" \
      -Dactivemq.data="$inst/data" -Djava.io.tmpdir="$inst/tmp" \
      -Dlog4j2.configurationFile="$inst/conf/log4j2.properties" -Dlog4j.configuration="file:$inst/conf/log4j.properties" \
      -jar /usr/share/activemq/bin/activemq.jar start "xbean:file:$inst/conf/activemq.xml"
    ;;
  rabbitmq)
    local dir="$DATA/rabbitmq"
    mkdir -p "$dir/home" "$dir/mnesia" "$dir/log"
    cp "$CONF/rabbitmq/rabbitmq.conf" "$CONF/rabbitmq/enabled_plugins" "$dir/"
    start_epmd || return 1
    # Our own node: its own name, cookie (in HOME), mnesia, logs, config and pid file.
    rabbit_env launch rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
    ;;
  servicebus)
    # Our own AMQP 1.0 emulator (emulators/servicebus), built by `pnpm build`.
    local cli="$ROOT/emulators/servicebus/dist/cli.js"
    [ -f "$cli" ] || die "servicebus: $cli is missing; run pnpm build first"
    launch servicebus node "$cli" --host 127.0.0.1 --port 5673 --admin-port 5674
    ;;
  postgres)
    local pd bin
    pd=$(pg_dir)
    bin=$(pg_bin)
    [ -x "$bin/postgres" ] || die "postgres: PostgreSQL $PG_MAJOR is not installed: apt-get install postgresql-$PG_MAJOR"
    if [ ! -f "$pd/data/.complete" ]; then
      [ -d "$pd/data" ] && say "postgres: $pd/data is half-initialised; recreating"
      rm -rf "$pd/data"
      mkdir -p "$pd/data" "$pd/sock"
      [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$pd" && chmod 700 "$pd"
      as_pg "$bin/initdb" -D "$pd/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >>"$(logfile postgres)" 2>&1 ||
        die "postgres: initdb failed (see pnpm brokers logs postgres)"
      as_pg touch "$pd/data/.complete"
    fi
    launch postgres "${AS_PG[@]}" "$bin/postgres" -D "$pd/data" -p 5433 -k "$pd/sock" \
      -c listen_addresses=127.0.0.1 -c shared_buffers=64MB -c max_connections=200 -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off
    ;;
  esac
}

rabbit_env() {
  local dir="$DATA/rabbitmq"
  HOME="$dir/home" RABBITMQ_NODENAME=switchyard@localhost RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_DIST_PORT=25673 ERL_EPMD_ADDRESS=127.0.0.1 \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_LOGS=- RABBITMQ_PID_FILE="$dir/rabbitmq.pid" "$@"
}

# epmd (Erlang's port mapper) is started by us, on loopback, with a pid file, so `down` can stop it.
start_epmd() {
  local f="$RUN/epmd.pid" pid
  pid=$(cat "$f" 2>/dev/null)
  pid_is_ours "$pid" epmd && return 0
  rm -f "$f"
  port_open 4369 && return 0 # someone else's epmd: RabbitMQ registers with it
  env "$(marker epmd)" setsid epmd -address 127.0.0.1 -port 4369 >>"$RUN/epmd.log" 2>&1 </dev/null 9>&- &
  echo $! >"$f"
  local i
  for ((i = 0; i < 50; i++)); do
    port_open 4369 && return 0
    sleep 0.1
  done
  say "rabbitmq: epmd did not start (log: $RUN/epmd.log)"
  return 1
}
stop_epmd() {
  local f="$RUN/epmd.pid" pid
  pid=$(cat "$f" 2>/dev/null)
  if pid_is_ours "$pid" epmd; then kill -TERM "$pid" 2>/dev/null; fi
  rm -f "$f"
}

probe() { timeout 40 node "$HERE/probe.mjs" "$1"; }

log_tail() {
  local name=$1 n=${2:-40}
  [ "$CI_MODE" = 1 ] && n=100
  say "----- last $n lines of $(logfile "$name") -----"
  tail -n "$n" "$(logfile "$name")" >&2 2>/dev/null
  say "-----"
}

# up_one NAME: install if needed, start unless running, wait for a real round trip. Exit 0 when healthy.
up_one() {
  local name=$1 pid p owner t0 deadline
  t0=$(date +%s)
  exec 9>"$RUN/$name.lock"
  flock -w "$UP_TIMEOUT" 9 || {
    say "$name: another 'brokers up' holds $RUN/$name.lock for over ${UP_TIMEOUT}s"
    return 1
  }
  pid=$(running_pid "$name")
  if [ -n "$pid" ]; then
    if probe "$name" >/dev/null 2>&1; then
      say "$name: already running (pid $pid), healthy"
      return 0
    fi
    say "$name: running (pid $pid) but not answering yet; waiting"
  else
    for p in $(ports_of "$name"); do
      if port_open "$p"; then
        owner=$(port_owner "$p")
        say "$name: port $p on 127.0.0.1 is already taken${owner:+ by $owner}, by a process this script did not start."
        say "$name: stop that process (or, if it is a $name of your own, use it: see docs/brokers.md, 'your own broker') and run 'pnpm brokers up $name' again."
        return 1
      fi
    done
    (start_cmd "$name") || {
      log_tail "$name"
      return 1
    }
    pid=$(running_pid "$name")
    [ -n "$pid" ] || {
      say "$name: did not start"
      log_tail "$name"
      return 1
    }
  fi
  deadline=$((t0 + UP_TIMEOUT))
  local first_port last_err=""
  first_port=$(ports_of "$name" | cut -d' ' -f1)
  while :; do
    if ! pid_is_ours "$pid" "$name" || [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ]; then
      say "$name: crashed while starting (pid $pid is gone)"
      log_tail "$name"
      rm -f "$(pidfile "$name")"
      return 1
    fi
    if port_open "$first_port"; then
      if last_err=$(probe "$name" 2>&1); then
        say "$name: healthy (pid $pid, round trip ok) after $(($(date +%s) - t0)) s"
        return 0
      fi
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$name: no round trip within ${UP_TIMEOUT}s${last_err:+ (last probe: $(echo "$last_err" | tail -1))}"
      log_tail "$name"
      say "$name: it is left running (pid $pid) for inspection; 'pnpm brokers down $name' stops it"
      return 1
    fi
    sleep 1
  done
}

ensure_node_deps() {
  [ -d "$HERE/node_modules/kafkajs" ] && return 0
  say "installing the probe's Node clients (pnpm install)"
  (cd "$ROOT" && pnpm install --frozen-lockfile >&2) || die "pnpm install failed"
}

cmd_up() {
  local names=("$@") n pids=() failed=() rc=0 t0
  [ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
  for n in "${names[@]}"; do is_known "$n" || die "unknown broker '$n' (known: ${ALL[*]})"; done
  t0=$(date +%s)
  ensure_node_deps
  # Debian packages first, in one apt call (dpkg takes one lock), then every broker in parallel.
  local debs=()
  for n in "${names[@]}"; do
    case "$n" in
    rabbitmq) debs+=(rabbitmq-server) ;;
    activemq) debs+=(activemq) ;;
    esac
  done
  [ ${#debs[@]} -gt 0 ] && { apt_install "${debs[@]}" || exit 1; }
  for n in "${names[@]}"; do
    (up_one "$n") &
    pids+=($!)
  done
  local i
  for i in "${!names[@]}"; do
    wait "${pids[$i]}" || failed+=("${names[$i]}")
  done
  if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}. Logs: pnpm brokers logs NAME; status: pnpm brokers status"
    rc=1
  else
    say "all up in $(($(date +%s) - t0)) s: ${names[*]}"
  fi
  return $rc
}

cmd_down() {
  local names=("$@") n
  [ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
  for n in "${names[@]}"; do is_known "$n" || die "unknown broker '$n' (known: ${ALL[*]})"; done
  for n in "${names[@]}"; do stop_one "$n" & done
  wait
}

cmd_status() {
  local n pid tmp rc=0
  tmp=$(mktemp -d)
  for n in "${ALL[@]}"; do
    (
      pid=$(running_pid "$n")
      if [ -n "$pid" ]; then
        if probe "$n" >/dev/null 2>&1; then echo yes; else echo NO; fi
      else
        echo "-"
      fi >"$tmp/$n"
    ) &
  done
  wait
  printf '%-10s %-26s %-20s %-8s %s\n' BROKER VERSION PORTS PID HEALTHY
  for n in "${ALL[@]}"; do
    pid=$(running_pid "$n")
    printf '%-10s %-26s %-20s %-8s %s\n' "$n" "$(version_of "$n")" "$(ports_of "$n" | tr ' ' ,)" "${pid:--}" "$(cat "$tmp/$n")"
    [ "$(cat "$tmp/$n")" = yes ] || rc=1
  done
  rm -rf "$tmp"
  return $rc
}

cmd_logs() {
  [ $# -eq 1 ] && is_known "$1" || die "usage: brokers.sh logs NAME (one of: ${ALL[*]})"
  local f
  f=$(logfile "$1")
  [ -f "$f" ] || die "$1 has no log yet ($f)"
  if [ -t 1 ]; then tail -n 200 "$f"; else cat "$f"; fi
}

# reset [NAME…]: stop our brokers and delete their data (topics, queues, tables), keeping what was
# installed, so the next `up` starts them empty. `pnpm test` does this first when CI=true: every CI
# run gets fresh brokers, whatever earlier runs on the same machine left behind.
cmd_reset() {
  local names=("$@") n
  [ ${#names[@]} -eq 0 ] && names=("${ALL[@]}")
  for n in "${names[@]}"; do is_known "$n" || die "unknown broker '$n' (known: ${ALL[*]})"; done
  cmd_down "${names[@]}"
  for n in "${names[@]}"; do
    case "$n" in
    postgres) rm -rf "$(pg_dir)/data" ;;
    *) rm -rf "${DATA:?}/$n" ;;
    esac
  done
  say "reset: ${names[*]} (data removed; installs kept)"
}

# ctl rabbitmq ARGS…: rabbitmqctl on our node (same node name, cookie and env as `up`), e.g. the fault
# test's stop_app / start_app. Only while our broker runs: never against a node we did not start.
cmd_ctl() {
  [ "${1:-}" = rabbitmq ] && [ $# -ge 2 ] || die "usage: brokers.sh ctl rabbitmq ARGS… (rabbitmqctl on our node)"
  shift
  [ -n "$(running_pid rabbitmq)" ] || die "rabbitmq: not running (start it with 'pnpm brokers up rabbitmq')"
  say "rabbitmq: rabbitmqctl $*"
  rabbit_env /usr/lib/rabbitmq/bin/rabbitmqctl "$@"
}

# postgres as root runs as the system user `postgres` (setpriv execs, so the pid stays the postmaster's).
if [ "$(id -u)" = 0 ]; then AS_PG=(setpriv --reuid=postgres --regid=postgres --init-groups); else AS_PG=(); fi

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up) cmd_up "$@" ;;
down) cmd_down "$@" ;;
status) cmd_status ;;
logs) cmd_logs "$@" ;;
ctl) cmd_ctl "$@" ;;
reset) cmd_reset "$@" ;;
*)
  echo "usage: pnpm brokers up [NAME…] | down [NAME…] | reset [NAME…] | status | logs NAME | ctl rabbitmq ARGS…" >&2
  echo "brokers: ${ALL[*]}" >&2
  exit 2
  ;;
esac
