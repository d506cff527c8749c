#include "transport/ring_buffer.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace xsite::transport {
namespace {

class HeapRing final : public RingMemory {
 public:
  explicit HeapRing(size_t capacity) {
    // aligned_alloc wants a size that is a multiple of the alignment.
    void* p = std::aligned_alloc(4096, (bytesFor(capacity) + 4095) / 4096 * 4096);
    if (p == nullptr) throw std::bad_alloc();
    header_ = new (p) RingHeader();
    format(capacity);
  }
  ~HeapRing() override { std::free(header_); }
};

bool processGone(int pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

}  // namespace

size_t ringCapacity(size_t requested) noexcept {
  size_t c = 4096;
  while (c < requested) c <<= 1;
  return c;
}

void RingMemory::format(size_t capacity) noexcept {
  header_->head.store(0);
  header_->tail.store(0);
  header_->capacity = capacity;
  header_->writerPid.store(0);
  header_->readerPid.store(0);
  header_->writerClosed.store(0);
  header_->readerClosed.store(0);
  header_->readerWaiting.store(0);
  header_->magic = RingHeader::kMagic;
}

std::shared_ptr<RingMemory> makeHeapRing(size_t capacity) {
  return std::make_shared<HeapRing>(ringCapacity(capacity));
}

void Doorbell::ring() const noexcept {
  const char one = 1;
  (void)!::write(fd_.get(), &one, 1);  // EAGAIN: the pipe is full, it rings already
}

void Doorbell::drain() const noexcept {
  char buf[256];
  while (::read(fd_.get(), buf, sizeof(buf)) == static_cast<ssize_t>(sizeof(buf))) {
  }
}

RingConnection::RingConnection(int peer, std::string label, std::shared_ptr<RingMemory> out,
                               std::shared_ptr<RingMemory> in, std::shared_ptr<const Doorbell> own,
                               std::shared_ptr<const Doorbell> peers)
    : StreamConnection(peer, std::move(label)),
      out_(std::move(out)),
      in_(std::move(in)),
      ownBell_(std::move(own)),
      peerBell_(std::move(peers)) {
  out_->header()->writerPid.store(getpid());
  in_->header()->readerPid.store(getpid());
}

RingConnection::~RingConnection() {
  out_->header()->writerClosed.store(1, std::memory_order_release);
  in_->header()->readerClosed.store(1, std::memory_order_release);
}

Result<size_t> RingConnection::writeSome(const iovec* iov, int iovcnt) noexcept {
  RingHeader* h = out_->header();
  const uint64_t cap = h->capacity;
  uint64_t head = h->head.load(std::memory_order_relaxed);
  uint64_t tail = h->tail.load(std::memory_order_acquire);
  size_t room = cap - (head - tail);
  if (room == 0) {
    if (h->readerClosed.load(std::memory_order_acquire))
      return peerGone("closed the connection while this rank was still sending");
    return size_t{0};
  }
  char* data = out_->data();
  size_t total = 0;
  for (int i = 0; i < iovcnt && room > 0; ++i) {
    size_t n = std::min(room, iov[i].iov_len);
    const char* src = static_cast<const char*>(iov[i].iov_base);
    size_t pos = (head + total) & (cap - 1);
    size_t first = std::min(n, cap - pos);
    memcpy(data + pos, src, first);
    memcpy(data, src + first, n - first);
    total += n;
    room -= n;
  }
  h->head.store(head + total, std::memory_order_release);
  if (peerBell_ && total > 0) {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with appendPollFds()
    if (h->readerWaiting.load(std::memory_order_relaxed) != 0 &&
        h->readerWaiting.exchange(0, std::memory_order_relaxed) != 0)
      peerBell_->ring();
  }
  return total;
}

Result<size_t> RingConnection::readSome(void* dst, size_t bytes) noexcept {
  RingHeader* h = in_->header();
  const uint64_t cap = h->capacity;
  uint64_t tail = h->tail.load(std::memory_order_relaxed);
  uint64_t head = h->head.load(std::memory_order_acquire);
  size_t n = std::min<uint64_t>(bytes, head - tail);
  if (n == 0) {
    if (h->writerClosed.load(std::memory_order_acquire) &&
        h->head.load(std::memory_order_acquire) == tail)
      return peerGone("closed the connection while this rank was still receiving");
    return size_t{0};
  }
  size_t pos = tail & (cap - 1);
  size_t first = std::min<size_t>(n, cap - pos);
  memcpy(dst, in_->data() + pos, first);
  memcpy(static_cast<char*>(dst) + first, in_->data(), n - first);
  h->tail.store(tail + n, std::memory_order_release);
  // Stand down if no writer did; only then, so that reads do not write the writer's cache line.
  if (ownBell_ && h->readerWaiting.load(std::memory_order_relaxed) != 0)
    h->readerWaiting.store(0, std::memory_order_relaxed);
  return n;
}

bool RingConnection::appendPollFds(std::vector<pollfd>& out) const noexcept {
  // A writer that waits for ring space is not rung when the reader frees it: poll by time.
  if (!ownBell_ || sendQueued()) return false;
  if (!wantsInput()) return true;
  ownBell_->drain();
  RingHeader* h = in_->header();
  h->readerWaiting.store(1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with writeSome()
  if (h->head.load(std::memory_order_relaxed) != h->tail.load(std::memory_order_relaxed) ||
      h->writerClosed.load(std::memory_order_relaxed) != 0)
    return false;  // bytes (or the end) came meanwhile: no sleeping
  out.push_back({ownBell_->fd(), POLLIN, 0});
  return true;
}

Status RingConnection::checkPeer() noexcept {
  int writer = in_->header()->writerPid.load();
  int reader = out_->header()->readerPid.load();
  if (processGone(writer) || processGone(reader))
    return peerGone("the peer process (pid " + std::to_string(processGone(writer) ? writer : reader) +
                    ") died");
  return Status::ok();
}

}  // namespace xsite::transport
