// The WAN frame decoder (src/transport/wan/wan.{h,cc}): a WanLink of 1-3 streams over
// socketpairs, 1-3 channels (WanConnections) with receives posted, and the fuzzer's bytes written
// into the other ends of the streams. Progress runs until every channel failed or nothing moves.
// The decoder must reject what is wrong with an error, never crash, overflow a receive buffer
// (each is exactly its size on the heap), hang or leak.
//
// Input: [config][receives][chunk]...
//   config    bits 0-1 streams-1, bits 2-3 channels-1, bit 5 close the streams at the end, bit 6
//             post a send on channel 0 (so acknowledgements have frames to acknowledge), bit 7 a
//             small early-frame budget (WanOptions::earlyBytes)
//   receives  bits 0-1: receives per channel, then a u16 size (mod 4096) for each
//   chunk     [ctl][u16 len][len bytes] to stream ctl % streams; ctl bit 7: the bytes are one
//             frame (a 56-byte FrameHeader and its payload) whose checksum the target computes,
//             and unless ctl bit 6 also its length and unless ctl bit 5 its magic and version,
//             so the fuzzer gets past the checksum to the checks behind it
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "transport/wan/wan.h"
#include "util/crc32c.h"

namespace {

using namespace xsite;
using namespace xsite::transport::wan;

struct Rig {
  std::vector<Fd> raw;  // the fuzzer's ends, one per stream
  std::vector<std::unique_ptr<WanConnection>> conns;
  std::vector<std::unique_ptr<char[]>> buffers;
  std::vector<bool> failed;

  // Reads what the link wrote (acknowledgements, frames of the send) and drops it.
  void drainRaw() {
    char buf[65536];
    for (auto& fd : raw)
      if (fd.valid())
        while (::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
  }
  // One round of progress on every channel still alive; true when something moved.
  bool step() {
    bool any = false;
    for (size_t c = 0; c < conns.size(); ++c) {
      if (failed[c]) continue;
      bool moved = false;
      if (!conns[c]->progress(moved)) failed[c] = true;
      any = any || moved;
    }
    drainRaw();
    return any;
  }
  bool allFailed() const {
    for (bool f : failed)
      if (!f) return false;
    return true;
  }
};

std::string fixFrame(std::string bytes, uint8_t ctl) {
  if (bytes.size() < sizeof(FrameHeader)) return bytes;
  FrameHeader h;
  memcpy(&h, bytes.data(), sizeof h);
  const size_t payload = bytes.size() - sizeof h;
  if (!(ctl & 0x40)) h.length = static_cast<uint32_t>(payload);
  if (!(ctl & 0x20)) {
    h.magic = FrameHeader::kMagic;
    h.version = FrameHeader::kVersion;
  }
  h.crc = 0;
  h.crc = crc32c(bytes.data() + sizeof h, payload, crc32c(&h, sizeof h));
  memcpy(&bytes[0], &h, sizeof h);
  return bytes;
}

void writeChunk(Rig& rig, int fd, const std::string& bytes) {
  size_t sent = 0;
  for (int spins = 0; sent < bytes.size() && spins < 1000; ++spins) {
    const ssize_t w = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      sent += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EINTR) return;  // the link closed its end
    if (!rig.step() && rig.allFailed()) return;  // nobody reads any more
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("XSITE_DEBUG", "NONE", 0);  // a failed link logs a warning: too much noise
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  xsite::fuzz::Input in(data, size);
  const uint8_t config = in.u8();
  const int streams = 1 + (config & 3) % 3;
  const int channels = 1 + ((config >> 2) & 3) % 3;
  WanOptions opt;
  opt.frameBytes = 1024;
  opt.windowBytes = 64 << 10;
  opt.earlyBytes = (config & 0x80) ? 4096 : (1 << 20);

  Rig rig;
  std::vector<Fd> mine;
  for (int i = 0; i < streams; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    mine.emplace_back(sv[0]);
    rig.raw.emplace_back(sv[1]);
  }
  auto link = std::make_shared<WanLink>("rank 7 (fuzz, wan)", std::move(mine), opt);
  for (int c = 0; c < channels; ++c) {
    rig.conns.push_back(std::make_unique<WanConnection>(7, "rank 7 (lane " + std::to_string(c) + ")", link, c));
    rig.failed.push_back(false);
  }
  link.reset();

  const uint8_t recvs = in.u8();
  for (int c = 0; c < channels; ++c)
    for (int r = 0; r < (recvs & 3); ++r) {
      const size_t bytes = in.u16() % 4096;
      rig.buffers.emplace_back(new char[bytes ? bytes : 1]);
      rig.conns[c]->postRecv(bytes ? rig.buffers.back().get() : nullptr, bytes);
    }
  static const std::string kSend(3000, 's');
  if (config & 0x40) rig.conns[0]->postSend(kSend.data(), kSend.size());

  while (!in.empty()) {
    const uint8_t ctl = in.u8();
    const size_t len = in.u16() % 8192;
    std::string bytes = in.bytes(len);
    if (ctl & 0x80) bytes = fixFrame(std::move(bytes), ctl);
    writeChunk(rig, rig.raw[ctl % streams].get(), bytes);
    rig.step();
  }
  if (config & 0x20)
    for (auto& fd : rig.raw) fd.reset();

  // Until every channel failed, or nothing moved for a while (all input consumed).
  int still = 0;
  for (int i = 0; i < 20000 && still < 64 && !rig.allFailed(); ++i) still = rig.step() ? 0 : still + 1;
  return 0;
}
