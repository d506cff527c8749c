#!/bin/sh
# tests/preload: runs resolve_plugins (which finds the net plugin and the tuner by NCCL's rules)
# under one scenario and checks what it found.
#   check_preload.sh CASE RESOLVER PRELOAD PLUGIN
# CASE: default | relative | user_net | user_tuner | user_empty | fallback_name | no_preload |
#       exports
set -eu
case_="$1"
resolver="$2"
preload="$3"
plugin=$(realpath "$4")
libdir=$(dirname "$plugin")

# Start from an environment without NCCL's variables, whatever the caller's shell had.
for v in $(env | sed -n 's/^\(NCCL_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
unset LD_PRELOAD

fail() {
  echo "preload.$case_: $*"
  echo "--- resolver output:"
  printf '%s\n' "$out"
  exit 1
}
expect() {  # expect LINE: the output has exactly this line
  printf '%s\n' "$out" | grep -qxF "$1" || fail "missing line: $1"
}
expect_not() {  # expect_not PATTERN: no line matches this fixed string
  if printf '%s\n' "$out" | grep -qF "$1"; then fail "unexpected: $1"; fi
}
out=""

case "$case_" in
  default)  # only LD_PRELOAD set: both variables name our library, and it resolves with its tables
    out=$(LD_PRELOAD="$preload" "$resolver")
    expect "env NCCL_NET_PLUGIN=$plugin"
    expect "env NCCL_TUNER_PLUGIN=$plugin"
    expect "net $plugin ncclNetPlugin_v11"
    expect "tuner $plugin ncclTunerPlugin_v5"
    ;;
  relative)  # a relative LD_PRELOAD still yields an absolute path (the program may chdir later)
    dir=$(dirname "$(realpath "$preload")")
    out=$(cd "$dir/.." && LD_PRELOAD="./$(basename "$dir")/$(basename "$preload")" "$resolver")
    expect "env NCCL_NET_PLUGIN=$plugin"
    expect "net $plugin ncclNetPlugin_v11"
    ;;
  user_net)  # the user's NCCL_NET_PLUGIN stays; the tuner is still pointed at ours
    out=$(NCCL_NET_PLUGIN=somethingelse LD_PRELOAD="$preload" "$resolver")
    expect "env NCCL_NET_PLUGIN=somethingelse"
    expect "net none"
    expect "env NCCL_TUNER_PLUGIN=$plugin"
    expect "tuner $plugin ncclTunerPlugin_v5"
    ;;
  user_tuner)  # the user's NCCL_TUNER_PLUGIN stays (NCCL then falls back to the net library)
    out=$(NCCL_TUNER_PLUGIN=somethingelse LD_PRELOAD="$preload" "$resolver")
    expect "env NCCL_TUNER_PLUGIN=somethingelse"
    expect "env NCCL_NET_PLUGIN=$plugin"
    expect "net $plugin ncclNetPlugin_v11"
    ;;
  user_empty)  # set to the empty string counts as set
    out=$(NCCL_NET_PLUGIN= NCCL_TUNER_PLUGIN= LD_PRELOAD="$preload" "$resolver")
    expect "env NCCL_NET_PLUGIN="
    expect "env NCCL_TUNER_PLUGIN="
    expect "net none"
    ;;
  fallback_name)  # no plugin beside the preload: names NCCL resolves through the search path
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    cp "$preload" "$tmp/"
    out=$(LD_PRELOAD="$tmp/$(basename "$preload")" "$resolver")
    expect "env NCCL_NET_PLUGIN=xsite"
    expect "env NCCL_TUNER_PLUGIN=libnccl-net-xsite.so"
    out=$(LD_LIBRARY_PATH="$libdir" LD_PRELOAD="$tmp/$(basename "$preload")" "$resolver")
    expect "net $plugin ncclNetPlugin_v11"
    expect "tuner $plugin ncclTunerPlugin_v5"
    ;;
  no_preload)  # without the shim nothing is set and nothing of ours is found
    out=$("$resolver")
    expect "env NCCL_NET_PLUGIN unset"
    expect "env NCCL_TUNER_PLUGIN unset"
    expect_not "$plugin"
    ;;
  exports)  # the shim exports nothing and needs nothing but the C library
    out=$(nm -D --defined-only "$preload" | awk 'NF >= 3 {print $3}')
    [ -z "$out" ] || fail "defines dynamic symbols"
    out=$(readelf -d "$preload" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    printf '%s\n' "$out" | grep -v -E '^(libc\.so\.6|libdl\.so\.2)$' | grep -q . &&
      fail "needs more than libc"
    ;;
  *)
    echo "check_preload.sh: unknown case $case_"
    exit 2
    ;;
esac
echo "preload.$case_: ok"
