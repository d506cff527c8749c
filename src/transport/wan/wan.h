// WAN streams: one Connection over several TCP sockets between two ranks in different sites.
// A message is cut into checksummed frames that go out on whichever stream has room, so the
// capacity of all streams adds up. Sends are staged eagerly: a send completes once its bytes are
// copied into the connection's window, so the caller's buffer is free before the data has
// crossed and the WAN window never depends on the caller's slots. The receiver checks every
// header against what was posted (message number, size, offset, length, checksum) and reports
// a bad frame as an error naming the peer.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "transport/transport.h"
#include "util/socket.h"

namespace xsite::transport::wan {

struct FrameHeader {
  static constexpr uint32_t kMagic = 0x58535731;  // "XSW1"
  static constexpr uint16_t kVersion = 1;
  uint32_t magic;
  uint16_t version;
  uint8_t codec;  // 0: raw bytes (compression comes with the codec layer)
  uint8_t flags;
  uint32_t length;        // payload bytes of this frame
  uint32_t crc;           // CRC32C of this header (crc = 0) and the payload
  uint64_t seq;           // frame number on this connection, over all streams
  uint64_t message;       // message number on this connection (0-based)
  uint64_t offset;        // of the payload in the message
  uint64_t messageBytes;  // size of the whole message
};
static_assert(sizeof(FrameHeader) == 48);

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;  // a receiver rejects anything larger

// Sizing of a WAN link from its bandwidth-delay product (rate, one-way latency): four BDPs of
// socket buffer spread over the streams (1..64 MiB each), and a staging window of four BDPs (at
// least 4 MiB) unless `windowBytes` > 0 sets it. Shared by Fabric and the NCCL net plugin.
struct WanSizing {
  int socketBytes;
  size_t windowBytes;
};
WanSizing wanSizing(double rateMbit, double latencyUs, int streams, size_t windowBytes) noexcept;
// Socket set-up of one WAN stream: buffer sizes (before connect(), or on the listener before
// listen() so accepted sockets inherit them), then congestion control `cc` (empty: the kernel
// default). False, errno set, when the kernel refused `cc`; the socket is usable either way.
bool prepareWanSocket(int fd, int socketBytes, const std::string& cc) noexcept;

struct WanOptions {
  size_t frameBytes = 64 << 10;
  size_t windowBytes = 4 << 20;  // staging: bytes accepted from callers but not yet in a socket
};

// Thread safety: the send side (staging and writing frames) may also be driven by a WanProxy
// thread, so that staged bytes keep flowing after the caller's send has completed and the caller
// has moved on; it is guarded by a mutex. The receive side belongs to the caller's thread.
class WanConnection final : public Connection {
 public:
  WanConnection(int peer, std::string label, std::vector<Fd> streams, WanOptions options);
  uint64_t postSend(const void* data, size_t bytes) noexcept override;
  Status progress(bool& moved) noexcept override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;

  // The send side only, for the proxy: `pending` is set while anything waits to be written.
  // An error sticks and is returned by the caller's next progress().
  void flush(bool& moved, bool& pending) noexcept;
  // Streams with bytes waiting for socket space (the proxy polls them for POLLOUT).
  void pendingFds(std::vector<int>& out);

 private:
  struct OutFrame {
    FrameHeader hdr;
    size_t stagingPos;  // where its payload starts in the staging ring (monotonic)
    size_t written = 0; // header + payload bytes written
    bool done = false;
  };
  struct Stream {
    Fd fd;
    OutFrame* out = nullptr;  // frame being written
    FrameHeader in{};         // header being read, or parked
    size_t inGot = 0;         // header bytes read
    size_t payloadGot = 0;    // payload bytes of the current frame read
    uint32_t crc = 0;         // running checksum of the current frame
    bool checked = false;     // header validated against the head receive
    uint64_t lastSeq = 0;
    bool haveSeq = false;
    bool ended = false;  // the peer closed it between frames (the others may carry the rest)
  };

  Status flushLocked(bool& moved) noexcept;
  Status stage(bool& moved) noexcept;
  Status writeStreams(bool& moved) noexcept;
  Status readStream(Stream& s, bool& moved) noexcept;
  Status checkHeader(Stream& s) noexcept;
  Status badFrame(const std::string& why) const;
  void releaseStaging() noexcept;

  WanOptions opt_;
  std::vector<Stream> streams_;
  mutable std::mutex sendMu_;  // guards the send queue, the staging ring, frames_ and Stream::out
  Status sendError_;   // sticky, from the proxy
  // Send side: a staging ring of opt_.windowBytes, frames in order of creation.
  std::unique_ptr<char[]> staging_;  // uninitialized: pages cost memory only once used
  size_t stagingBytes_ = 0;
  size_t stageHead_ = 0, stageTail_ = 0;  // monotonic byte counters
  std::deque<std::unique_ptr<OutFrame>> frames_;
  size_t nextUnassigned_ = 0;             // index in frames_ of the first frame without a stream
  uint64_t nextSeq_ = 0, sendMessage_ = 0;
  size_t stagedOfHead_ = 0;               // bytes of the head send already staged
  bool headFramed_ = false;               // the head send has emitted at least one frame
  // Receive side: progress of the head receive.
  uint64_t recvMessage_ = 0;
  size_t recvBytes_ = 0;
  std::set<uint64_t> recvOffsets_;
};

}  // namespace xsite::transport::wan
