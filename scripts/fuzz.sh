#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/), run long: builds build-fuzz with clang (XSITE_FUZZ=ON:
# ASan + UBSan + libFuzzer coverage), then runs each target for N seconds on a scratch copy of its
# seed corpus (the repo's corpus never grows), and prints per target: runs, seconds, result.
#   scripts/fuzz.sh [--seconds N] [--jobs J] [--keep-going] [TARGET...]
# (default: 600 s, every target). --keep-going: fork mode, a crash is saved and fuzzing goes on
# (a known finding then does not stop the search for others).
# Targets: fuzz_wan_frames fuzz_store fuzz_hellos fuzz_codecs fuzz_topology fuzz_params.
# A crash leaves its reproducer in the scratch folder (printed); rerun it with
#   build-fuzz/bin/TARGET path/to/crash-...
# The short run is a ctest test per target, label fuzz (XSITE_FUZZ_SECONDS, default 20):
#   cmake --build build-fuzz --target xsite_fuzz && ctest --test-dir build-fuzz -L fuzz
# Needs clang and compiler-rt (Debian: clang-14 libclang-rt-14-dev llvm-14); the default test
# suite (scripts/run_tests.sh, g++) does not.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

seconds=600
keep=0
jobs=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --keep-going) keep=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
all=(fuzz_wan_frames fuzz_store fuzz_hellos fuzz_codecs fuzz_topology fuzz_params)
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

ensure_build_deps
command -v clang++ >/dev/null || ensure_packages clang-14 libclang-rt-14-dev llvm-14
cxx=$(command -v clang++ || command -v clang++-14)
cc=$(command -v clang || command -v clang-14)
build="$XSITE_ROOT/build-fuzz"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$XSITE_ROOT" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" -DXSITE_FUZZ=ON \
    -DXSITE_BUILD_TESTS=OFF -DXSITE_BUILD_BENCH=OFF -DXSITE_WITH_UCX=OFF >/dev/null
fi
tbuild=()
for t in "${targets[@]}"; do tbuild+=(--target "$t"); done
cmake --build "$build" -j "${XSITE_BUILD_JOBS:-$(nproc)}" "${tbuild[@]}"

llvm_symbolizer=$(command -v llvm-symbolizer || command -v llvm-symbolizer-14 || true)
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1${llvm_symbolizer:+:external_symbolizer_path=$llvm_symbolizer}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
parallel=()
if [ "$keep" = 1 ]; then
  parallel=(-fork="$jobs" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
elif [ "$jobs" -gt 1 ]; then
  parallel=(-jobs="$jobs" -workers="$jobs")
fi
scratch=$(mktemp -d /tmp/xsite-fuzz.XXXXXX)
summary=()
status=0
for t in "${targets[@]}"; do
  work="$scratch/$t"
  mkdir -p "$work/corpus" "$work/artifacts"
  cp -r "$XSITE_ROOT/tests/fuzz/corpus/$t/." "$work/corpus/" 2>/dev/null || true
  echo "== $t: ${seconds}s, log $work/log" >&2
  start=$SECONDS
  set +e
  (cd "$work" && "$build/bin/$t" -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 \
    ${parallel[@]+"${parallel[@]}"} -artifact_prefix="$work/artifacts/" "$work/corpus" >"$work/log" 2>&1)
  rc=$?
  set -e
  secs=$((SECONDS - start))
  runs=$(grep -ho 'stat::number_of_executed_units: *[0-9]*' "$work"/log "$work"/fuzz-*.log 2>/dev/null |
         awk '{s += $2} END {print s + 0}' || true)
  if [ "$runs" = 0 ]; then  # fork mode: the last "#N: cov: ..." line counts every job's runs
    runs=$(grep -ho '^#[0-9]*' "$work/log" | tail -1 | tr -d '#' || true)
  fi
  cov=$(grep -ho 'cov: [0-9]*' "$work/log" | tail -1 | awk '{print $2}' || true)
  crashes=$(ls "$work/artifacts" 2>/dev/null | wc -l)
  if [ $rc -eq 0 ] && [ "$crashes" = 0 ]; then
    result="ok"
  else
    result="FAILED (exit $rc): $crashes reproducer(s) in $work/artifacts"
    status=1
  fi
  summary+=("$(printf '%-16s runs %10s  seconds %5s  cov %6s  %s' "$t" "$runs" "$secs" "${cov:-?}" "$result")")
done
echo "== xsite fuzz summary (scratch: $scratch)"
printf '%s\n' "${summary[@]}"
exit $status
