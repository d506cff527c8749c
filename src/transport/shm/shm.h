// Shared-memory backend: rings in POSIX shared-memory segments, for processes of one domain.
#pragma once

#include <memory>
#include <string>

#include "transport/ring_buffer.h"

namespace xsite::transport::shm {

// Creates (and formats) a segment; it is unlinked by unlinkRing() once the peer has mapped it.
std::shared_ptr<RingMemory> createRing(const std::string& name, size_t capacity);
std::shared_ptr<RingMemory> openRing(const std::string& name);
void unlinkRing(const std::string& name) noexcept;

}  // namespace xsite::transport::shm
