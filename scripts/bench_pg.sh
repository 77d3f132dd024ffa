#!/usr/bin/env bash
# The tracking benchmark on PostgreSQL + S3 (issue 17): wasmflow and `mlflow server` side by side
# on one PostgreSQL (a database each) and one moto S3 bucket, then wasmflow's 8-client log-metric
# throughput with one and with two replicas. Writes target/bench-pg/report.md.
#
#   scripts/bench_pg.sh [bench_pg.py options]   (--runs, --points, --skip-mlflow, --skip-replicas)
#   PostgreSQL: WASMFLOW_TEST_POSTGRES_URI (or --pg-uri) names a superuser's database; without it
#   a throwaway cluster is started as scripts/test.sh does (scripts/test-postgres.sh).
#   WASMFLOW_BIN=path  benchmark that binary instead of building target/release/wasmflow
set -euo pipefail

bench=pg
# shellcheck source=scripts/bench_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench_common.sh"
if [[ -z "${WASMFLOW_TEST_POSTGRES_URI:-}" && "$*" != *--pg-uri* ]]; then
    # shellcheck source=scripts/test-postgres.sh
    source "$repo/scripts/test-postgres.sh"
    start_test_postgres "$out/postgres"
    trap 'status=$?; stop_test_postgres; (exit $status); cleanup' EXIT
fi
bench_run "$@"
