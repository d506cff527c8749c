// CRC32C (Castagnoli), as iSCSI, ext4 and RDMA use: the SSE4.2 instruction where the CPU has it,
// a table otherwise. crc32c(data, n, crc32c(a, m)) continues a running checksum.
#pragma once

#include <cstddef>
#include <cstdint>

namespace xsite {

uint32_t crc32c(const void* data, size_t bytes, uint32_t crc = 0) noexcept;

}  // namespace xsite
