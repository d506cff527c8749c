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

// A rank's doorbell (ring_buffer.h), a FIFO at `path` (a tmpfs such as /dev/shm): the owner
// creates it and holds it open for reading and writing (so that it never reports a hang-up);
// peers open it for writing. Null, errno set, when the file system refuses; unlinkDoorbell()
// once the peers have it open.
std::shared_ptr<const Doorbell> createDoorbell(const std::string& path) noexcept;
std::shared_ptr<const Doorbell> openDoorbell(const std::string& path) noexcept;
void unlinkDoorbell(const std::string& path) noexcept;

}  // namespace xsite::transport::shm
