// A single-producer single-consumer byte ring, placed in process memory (loopback backend) or in
// a POSIX shared-memory segment (shm backend). RingConnection is the Connection over two rings.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "transport/stream.h"

namespace xsite::transport {

struct RingHeader {
  static constexpr uint64_t kMagic = 0x5853524e47303031ull;  // "XSRNG001"
  alignas(64) std::atomic<uint64_t> head;  // bytes written, by the producer
  alignas(64) std::atomic<uint64_t> tail;  // bytes read, by the consumer
  alignas(64) uint64_t magic;
  uint64_t capacity;  // power of two
  std::atomic<int32_t> writerPid;
  std::atomic<int32_t> readerPid;
  std::atomic<uint32_t> writerClosed;
  std::atomic<uint32_t> readerClosed;
};

// The memory of one ring: header then `capacity` data bytes. Owns it (heap or mapping).
class RingMemory {
 public:
  virtual ~RingMemory() = default;
  RingHeader* header() const noexcept { return header_; }
  char* data() const noexcept { return reinterpret_cast<char*>(header_) + dataOffset(); }
  static size_t dataOffset() noexcept { return 256; }
  static size_t bytesFor(size_t capacity) noexcept { return dataOffset() + capacity; }
  // Initializes a fresh ring (the creator does this once).
  void format(size_t capacity) noexcept;

 protected:
  RingHeader* header_ = nullptr;
};

std::shared_ptr<RingMemory> makeHeapRing(size_t capacity);

// Round up to a power of two, at least 4 KiB.
size_t ringCapacity(size_t requested) noexcept;

class RingConnection final : public StreamConnection {
 public:
  RingConnection(int peer, std::string label, std::shared_ptr<RingMemory> out,
                 std::shared_ptr<RingMemory> in);
  ~RingConnection() override;

 private:
  Result<size_t> writeSome(const iovec* iov, int iovcnt) noexcept override;
  Result<size_t> readSome(void* data, size_t bytes) noexcept override;
  Status checkPeer() noexcept override;
  std::shared_ptr<RingMemory> out_, in_;
};

}  // namespace xsite::transport
