#!/usr/bin/env bash
# Sourced by the test and demo scripts: makes sure a PostgreSQL server answers at
# DATABASE_URL and exports it. On machines where one already runs it is used as is;
# otherwise a private cluster is started with the PostgreSQL binaries (installing the
# Debian package first if they are missing). The private cluster lives under target/
# and is stopped by `scripts/stop-postgres.sh` or left for the next run to reuse.

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
export DATABASE_URL

pg_answers() {
  local rest hostport host port
  rest=${DATABASE_URL#*://}
  rest=${rest#*@}
  hostport=${rest%%/*}
  host=${hostport%%:*}
  port=${hostport##*:}
  [ "$port" = "$hostport" ] && port=5432
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$host" -p "$port" -t 2
  else
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
  fi
}

pg_bindir() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_private_cluster() {
  local bindir dir port run_as=()
  bindir=$(pg_bindir)
  if [ -z "$bindir" ]; then
    echo "PostgreSQL binaries not found; installing the postgresql package" >&2
    local sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
    bindir=$(pg_bindir)
  fi
  dir="$(pwd)/target/pg-private"
  port=54329
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    # initdb refuses to run as root.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown -R postgres "$dir"
    run_as=(runuser -u postgres --)
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  fi
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off" start >/dev/null
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
  export DATABASE_URL
  echo "started a private PostgreSQL cluster at $DATABASE_URL" >&2
}

if ! pg_answers; then
  # A private cluster from an earlier run may still be there.
  DATABASE_URL_REQUESTED=$DATABASE_URL
  DATABASE_URL="postgres://postgres@127.0.0.1:54329/postgres"
  if ! pg_answers; then
    DATABASE_URL=$DATABASE_URL_REQUESTED
    start_private_cluster
  fi
  export DATABASE_URL
fi
