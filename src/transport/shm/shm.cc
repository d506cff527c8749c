#include "transport/shm/shm.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <new>

#include "util/socket.h"

namespace xsite::transport::shm {
namespace {

class ShmRing final : public RingMemory {
 public:
  ShmRing(void* base, size_t bytes) : bytes_(bytes) { header_ = static_cast<RingHeader*>(base); }
  ~ShmRing() override { munmap(header_, bytes_); }

 private:
  size_t bytes_;
};

void* mapFd(int fd, size_t bytes, const std::string& name) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED)
    throw Error(ErrorCategory::kSystem, "mmap of shared memory " + name + ": " + errnoString(errno));
  return p;
}

}  // namespace

std::shared_ptr<RingMemory> createRing(const std::string& name, size_t capacity) {
  capacity = ringCapacity(capacity);
  size_t bytes = RingMemory::bytesFor(capacity);
  Fd fd(shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid())
    throw Error(ErrorCategory::kSystem, "shm_open(" + name + "): " + errnoString(errno) +
                                            " (is /dev/shm mounted and writable?)");
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) {
    int err = errno;
    shm_unlink(name.c_str());
    throw Error(ErrorCategory::kSystem, "cannot size shared memory " + name + " to " +
                                            std::to_string(bytes) + " bytes: " + errnoString(err));
  }
  void* p = mapFd(fd.get(), bytes, name);
  new (p) RingHeader();
  auto ring = std::make_shared<ShmRing>(p, bytes);
  ring->format(capacity);
  return ring;
}

std::shared_ptr<RingMemory> openRing(const std::string& name) {
  Fd fd(shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid())
    throw Error(ErrorCategory::kSystem, "shm_open(" + name + ") of a peer's ring: " +
                                            errnoString(errno) +
                                            " (are both ranks on one host with one /dev/shm?)");
  struct stat st {};
  fstat(fd.get(), &st);
  size_t bytes = static_cast<size_t>(st.st_size);
  if (bytes < RingMemory::dataOffset() + 4096)
    throw Error(ErrorCategory::kSystem, "shared memory " + name + " is too small");
  void* p = mapFd(fd.get(), bytes, name);
  auto ring = std::make_shared<ShmRing>(p, bytes);
  RingHeader* h = ring->header();
  if (h->magic != RingHeader::kMagic || RingMemory::bytesFor(h->capacity) != bytes)
    throw Error(ErrorCategory::kSystem, "shared memory " + name + " is not an xsite ring");
  return ring;
}

void unlinkRing(const std::string& name) noexcept { shm_unlink(name.c_str()); }

std::shared_ptr<const Doorbell> createDoorbell(const std::string& path) noexcept {
  if (::mkfifo(path.c_str(), 0600) != 0) return nullptr;
  Fd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    const int err = errno;
    ::unlink(path.c_str());
    errno = err;
    return nullptr;
  }
  return std::make_shared<const Doorbell>(std::move(fd));
}

std::shared_ptr<const Doorbell> openDoorbell(const std::string& path) noexcept {
  Fd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) return nullptr;
  return std::make_shared<const Doorbell>(std::move(fd));
}

void unlinkDoorbell(const std::string& path) noexcept { ::unlink(path.c_str()); }

}  // namespace xsite::transport::shm
