#!/bin/sh
# Fails when libxsite.so exports anything but its public API (include/xsite/): the classes
# Communicator, LocalGroup, Error and Store with their type information, and the free functions of
# types.h and error.h. Nothing of the layers under it (bootstrap, transport, coll, ...) may leak
# into a program that links it. Also fails when part of the API is missing.
set -eu
so="$1"
syms=$(nm -D --defined-only -C "$so" | awk 'NF >= 3 {$1 = ""; $2 = ""; sub(/^  /, ""); print}')
api='^xsite::(Communicator|LocalGroup|Error|Store)::|^(typeinfo|typeinfo name|vtable) for xsite::(Error|Store)$'
api="$api"'|^xsite::(errorCategoryName|dataTypeSize|dataTypeName|parseDataType|isFloatingPoint|isReducible|elementToDouble|elementFromDouble|reduceOpName|parseReduceOp|codecName|parseCodec|algorithmName|parseAlgorithm)\('
extra=$(printf '%s\n' "$syms" | grep -v -E "$api" || true)
if [ -n "$extra" ]; then
  echo "exports: symbols of $so outside the public API:"
  printf '%s\n' "$extra" | head -40
  exit 1
fi
for want in 'xsite::Communicator::fromEnvironment(' 'xsite::Communicator::allReduce(' \
            'xsite::LocalGroup::LocalGroup(' 'xsite::Store::get(' 'typeinfo for xsite::Error' \
            'xsite::parseAlgorithm('; do
  printf '%s\n' "$syms" | grep -q -F "$want" || { echo "exports: $so lacks $want"; exit 1; }
done
echo "exports: $(printf '%s\n' "$syms" | wc -l) symbols, all of the public API"
