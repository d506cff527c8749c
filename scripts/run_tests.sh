#!/usr/bin/env bash
# The test suite: installs what it needs, builds, runs every ctest test (no GPU needed).
# Extra arguments go to ctest, e.g. scripts/run_tests.sh -L coll
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_build_deps
build
cd "$XSITE_BUILD"
ctest --output-on-failure --timeout 600 "$@"
