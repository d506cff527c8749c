#!/usr/bin/env bash
# The test suite: installs what it needs, builds, runs every ctest test but those labelled gpu
# (the CUDA codec kernels against the host's, built when nvcc is found; they need a device).
# Extra arguments go to ctest, e.g. scripts/run_tests.sh -L coll
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_build_deps
build
cd "$XSITE_BUILD"
ctest --output-on-failure --timeout 600 -LE gpu "$@"
