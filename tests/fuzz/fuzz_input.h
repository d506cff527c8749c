// A cursor over the fuzzer's bytes, shared by the targets: reads that run past the end yield
// zeros (never fail), so every input is a valid program for the target.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace xsite::fuzz {

class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t left() const { return size_ - pos_; }
  bool empty() const { return pos_ >= size_; }
  uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
  uint32_t u32() { return static_cast<uint32_t>(u16() | (uint32_t{u16()} << 16)); }
  // Up to n bytes (fewer at the end of the input).
  std::string bytes(size_t n) {
    n = std::min(n, left());
    std::string s(reinterpret_cast<const char*>(data_ + pos_), n);
    pos_ += n;
    return s;
  }
  std::string rest() { return bytes(left()); }
  // The bytes up to the next `sep` (consumed, not returned), or the rest.
  std::string until(char sep) {
    const void* hit = pos_ < size_ ? memchr(data_ + pos_, sep, size_ - pos_) : nullptr;
    if (hit == nullptr) return rest();
    const size_t n = static_cast<size_t>(static_cast<const uint8_t*>(hit) - (data_ + pos_));
    std::string s = bytes(n);
    ++pos_;
    return s;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// Runs f() with SIGALRM held back. libFuzzer's -timeout arms a SIGALRM every second, and a
// blocking connect() it interrupts fails with EINTR, which xsite's tcpConnect (util/socket.cc)
// reports as an error instead of retrying; the harness keeps that known finding out of the way
// of the others. A signal that arrived meanwhile is delivered when f() returns.
template <class F>
auto withoutAlarm(F&& f) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  struct Restore {
    sigset_t old;
    ~Restore() { pthread_sigmask(SIG_SETMASK, &old, nullptr); }
  } restore{old};
  return f();
}

}  // namespace xsite::fuzz
