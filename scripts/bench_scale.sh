#!/usr/bin/env bash
# The store scaling benchmark (issue 17, item 5): grows one experiment to 10,000, 100,000 and
# 1,000,000 runs (3 metrics, 2 params, 1 tag each) on SQLite and on PostgreSQL, printing the
# ingest rate and, at each size, the latency of a top-100 metric search and of the newest-100
# page; then log-batch throughput. Writes target/bench-scale/report.md.
#
#   scripts/bench_scale.sh [bench_scale.py options]
#       --sizes 10000,100000   the sizes to grow to (default 10000,100000,1000000)
#       --backends sqlite      sqlite, postgres or both (default)
#       --clients 4            client processes that grow the experiment
#       --rest-max 100000      larger steps are seeded with SQL (server stopped) instead of REST
#   PostgreSQL: WASMFLOW_TEST_POSTGRES_URI (or --pg-uri) names a superuser's database; without it
#   a throwaway cluster is started as scripts/test.sh does (scripts/test-postgres.sh).
#   WASMFLOW_BIN=path  benchmark that binary instead of building target/release/wasmflow
set -euo pipefail

bench=scale
# shellcheck source=scripts/bench_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"
if [[ -z "${WASMFLOW_TEST_POSTGRES_URI:-}" && "$*" != *"--backends sqlite"* && "$*" != *--pg-uri* ]]; then
    # shellcheck source=scripts/test-postgres.sh
    source "$repo/scripts/test-postgres.sh"
    start_test_postgres "$out/postgres"
    trap 'status=$?; stop_test_postgres; (exit $status); cleanup' EXIT
fi
bench_run "$@"
