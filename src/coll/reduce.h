// The per-element reduction kernels on host memory. kAvg reduces as a sum; the owner of the
// final value divides once (divideInPlace) so every rank ends with the same bytes.
#pragma once

#include <cstddef>

#include "xsite/types.h"

namespace xsite::coll {

// out[i] = a[i] op b[i]; out may alias a or b. Types must be reducible.
void reduce(void* out, const void* a, const void* b, size_t count, DataType type, ReduceOp op) noexcept;
// buf[i] /= divisor (integer types truncate toward zero).
void divideInPlace(void* buf, size_t count, DataType type, int divisor) noexcept;

}  // namespace xsite::coll
