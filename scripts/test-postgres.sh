# Sourced by scripts/test.sh: a throwaway PostgreSQL cluster for the tests.
#
# `start_test_postgres DIR` installs PostgreSQL from Debian's packages when it is missing, creates a
# cluster in DIR (removed and made anew, unless one is already running there), starts it on a free port of 127.0.0.1 and
# exports WASMFLOW_TEST_POSTGRES_URI (a superuser's uri to its `postgres` database: the tests create
# a fresh database of their own under it) and, when openssl made it a certificate, the
# WASMFLOW_TEST_POSTGRES_CA that verifies its TLS. `stop_test_postgres` stops it; test.sh calls it on exit.
# An already set WASMFLOW_TEST_POSTGRES_URI is used as it is (nothing is started).

test_postgres_dir=""
test_postgres_user=""

_pg_bin() {
    local bin
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [[ -n "$bin" && -x "$bin/initdb" ]] && echo "$bin"
}

_pg_as_owner() {
    # initdb and the server refuse to run as root: as root they run as the `postgres` user the
    # package creates, in a directory that user owns.
    if [[ "$(id -u)" == "0" ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start_test_postgres() {
    if [[ -n "${WASMFLOW_TEST_POSTGRES_URI:-}" ]]; then
        echo "==> PostgreSQL: using WASMFLOW_TEST_POSTGRES_URI as given"
        return 0
    fi
    local dir="$1" bin port
    bin="$(_pg_bin || true)"
    if [[ -z "$bin" ]]; then
        echo "==> PostgreSQL: installing Debian's postgresql package"
        if [[ "$(id -u)" != "0" ]]; then
            echo "error: PostgreSQL is not installed and installing it needs root" >&2
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
        bin="$(_pg_bin)"
    fi
    if [[ -f "$dir/data/postmaster.pid" ]] && _pg_as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        # A cluster already running in DIR (another shell's, e.g. a developer's second terminal)
        # is used as it is, not wiped from under its users; it is left running on exit.
        port="$(sed -n 4p "$dir/data/postmaster.pid")"
        if [[ "$(id -u)" == "0" ]]; then test_postgres_user=postgres; else test_postgres_user="$(id -un)"; fi
        echo "==> PostgreSQL: using the cluster already running in $dir on port $port"
        if [[ -f "$dir/ca.crt" ]]; then export WASMFLOW_TEST_POSTGRES_CA="$dir/ca.crt"; fi
        export WASMFLOW_TEST_POSTGRES_URI="postgresql://$test_postgres_user@127.0.0.1:$port/postgres"
        return 0
    fi
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    rm -rf "$dir"
    mkdir -p "$dir"
    if [[ "$(id -u)" == "0" ]]; then
        chown postgres: "$dir"
        if ! runuser -u postgres -- test -w "$dir"; then
            # A target directory under a folder the postgres user cannot enter (root's home):
            # the cluster goes to a folder of its own under /tmp instead.
            rm -rf "$dir"
            dir="$(mktemp -d /tmp/wasmflow-test-postgres.XXXXXX)"
            chown postgres: "$dir"
        fi
        test_postgres_user=postgres
    else
        test_postgres_user="$(id -un)"
    fi
    echo "==> PostgreSQL: throwaway cluster in $dir on port $port ($bin)"
    _pg_as_owner "$bin/initdb" -D "$dir/data" -U "$test_postgres_user" --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; return 1; }
    # TLS with a certificate for 127.0.0.1 from a throwaway CA, so that the tests can connect with
    # sslmode=verify-full; without openssl the cluster has no TLS and those tests skip.
    local ssl=""
    if command -v openssl >/dev/null &&
        openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=wasmflow test CA" \
            -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1 &&
        openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
            -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1 &&
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$dir/server.ext" &&
        openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
            -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server.crt" >/dev/null 2>&1; then
        chmod 600 "$dir/server.key"
        if [[ "$(id -u)" == "0" ]]; then chown postgres: "$dir/server.key" "$dir/server.crt"; fi
        ssl="-c ssl=on -c ssl_cert_file=$dir/server.crt -c ssl_key_file=$dir/server.key"
        export WASMFLOW_TEST_POSTGRES_CA="$dir/ca.crt"
    fi
    # fsync off: the cluster is thrown away, and durability is not what these tests check.
    _pg_as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $dir -F -c max_connections=300 $ssl" start >/dev/null ||
        { cat "$dir/server.log" >&2; return 1; }
    test_postgres_dir="$dir"
    export WASMFLOW_TEST_POSTGRES_URI="postgresql://$test_postgres_user@127.0.0.1:$port/postgres"
}

stop_test_postgres() {
    if [[ -n "$test_postgres_dir" ]]; then
        local bin
        bin="$(_pg_bin)"
        _pg_as_owner "$bin/pg_ctl" -D "$test_postgres_dir/data" -m immediate stop >/dev/null 2>&1 || true
        case "$test_postgres_dir" in
            /tmp/wasmflow-test-postgres.*) rm -rf "$test_postgres_dir" ;;
        esac
        test_postgres_dir=""
    fi
}
