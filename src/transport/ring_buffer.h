// A single-producer single-consumer byte ring, placed in process memory (loopback backend) or in
// a POSIX shared-memory segment (shm backend). RingConnection is the Connection over two rings.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "transport/stream.h"
#include "util/socket.h"

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
  // The reader is about to sleep on its doorbell: the writer clears this and rings it after
  // publishing new bytes (both sides fence, so that one of them sees the other).
  std::atomic<uint32_t> readerWaiting;
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

// A rank's doorbell: a FIFO that its peers on the host write a byte to when they put bytes in a
// ring whose reader is about to sleep (RingHeader::readerWaiting). Its read end is a descriptor
// the rank polls beside its sockets, so that a rank waiting on shared memory sleeps in the kernel
// and wakes when a peer writes, instead of waking every few microseconds to look.
class Doorbell {
 public:
  explicit Doorbell(Fd fd) noexcept : fd_(std::move(fd)) {}
  int fd() const noexcept { return fd_.get(); }
  void ring() const noexcept;   // one byte; a full pipe rings already
  void drain() const noexcept;  // reads what earlier rings left
 private:
  Fd fd_;
};

class RingConnection final : public StreamConnection {
 public:
  // `own` (this rank's doorbell, read end) and `peers` (the peer's, write end) are both set or
  // both null; without them an idle caller polls this connection by time.
  RingConnection(int peer, std::string label, std::shared_ptr<RingMemory> out,
                 std::shared_ptr<RingMemory> in, std::shared_ptr<const Doorbell> own = nullptr,
                 std::shared_ptr<const Doorbell> peers = nullptr);
  ~RingConnection() override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

 private:
  Result<size_t> writeSome(const iovec* iov, int iovcnt) noexcept override;
  Result<size_t> readSome(void* data, size_t bytes) noexcept override;
  Status checkPeer() noexcept override;
  std::shared_ptr<RingMemory> out_, in_;
  std::shared_ptr<const Doorbell> ownBell_, peerBell_;
};

}  // namespace xsite::transport
