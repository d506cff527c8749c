#!/bin/sh
# Fails when libnccl-net-xsite.so defines any dynamic symbol besides NCCL's tables: nothing of
# xsite's C++ and nothing of libstdc++/libgcc may leak into the host process.
set -eu
so="$1"
syms=$(nm -D --defined-only "$so" | awk 'NF >= 3 {print $3}')
extra=$(printf '%s\n' "$syms" | grep -v -E '^(ncclNetPlugin_v(8|9|10|11)|ncclCollNetPlugin_v(8|9|10|11)|ncclTunerPlugin_v(3|4|5))$' || true)
count=$(printf '%s\n' "$syms" | grep -c -E '^(ncclNetPlugin_v(8|9|10|11)|ncclCollNetPlugin_v(8|9|10|11)|ncclTunerPlugin_v(3|4|5))$' || true)
if [ -n "$extra" ]; then
  echo "exports: unexpected symbols in $so:"
  printf '%s\n' "$extra"
  exit 1
fi
if [ "$count" -ne 11 ]; then
  echo "exports: expected 11 tables, found $count"
  exit 1
fi
if nm -D "$so" | grep -q -E 'GLIBCXX|CXXABI|_ZSt|_ZN9__gnu_cxx'; then
  echo "exports: $so still refers to libstdc++ symbols"
  exit 1
fi
echo "exports: 11 tables, nothing else"
