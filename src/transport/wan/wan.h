// WAN streams: the connections between two ranks in different sites, over several TCP sockets
// (a WanLink). A message is cut into checksummed frames that go out on whichever stream has room,
// so the capacity of all streams adds up. Several channels (WanConnections, e.g. the lanes of the
// cross-site stage) share one link: a few long-lived, busy flows per pair of ranks fill a
// long-haul link far better than many bursty ones, whose congestion control never learns the
// path. Each frame names its channel; on a link of several channels a frame whose receive is not
// posted yet is buffered (up to WanOptions::earlyBytes), so one channel does not block another. Sends are staged eagerly: a send completes once its bytes are
// copied into the link's window, so the caller's buffer is free before the data has crossed and
// the WAN window never depends on the caller's slots. The receiver checks every header against
// what was posted (channel, message number, size, offset, length, checksum) and reports a bad
// frame as an error naming the peer.
//
// Links heal. The receiver acknowledges the frames of each stream (an ack frame carries "every
// frame of this stream numbered below N has arrived"), and a frame stays in the staging window
// until it is acknowledged. When a stream is reset, times out (TCP_USER_TIMEOUT) or fails, the
// side that dialed it at set-up dials the peer's WAN listener again; the two sides tell each
// other how far they received on that stream and resend the rest from the window, so nothing is
// lost and nothing arrives twice. The other streams carry on meanwhile. A link fails only when a
// stream cannot be re-established within WanResume::timeout (XSITE_WAN_RECONNECT_TIMEOUT), or at
// once when the peer's listener refuses (its process is gone).
//
// With WanOptions::tls (XSITE_WAN_TLS) every stream runs TLS 1.3 keyed by the job's secret
// (tls.h): a stream starts, and restarts after a heal, with a handshake, and carries the same
// frames encrypted. The frames keep their checksums; TLS adds secrecy and tamper-proofing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bootstrap/auth.h"
#include "transport/transport.h"
#include "transport/wan/sizing.h"
#include "transport/wan/tls.h"
#include "util/socket.h"

namespace xsite::transport::wan {

struct FrameHeader {
  static constexpr uint32_t kMagic = 0x58535731;  // "XSW1"
  static constexpr uint8_t kVersion = 4;
  static constexpr uint8_t kFlagAck = 1;  // no payload; seq: every frame below it has arrived
  uint32_t magic;
  uint8_t version;
  uint8_t channel;  // the connection of the link the frame belongs to
  uint8_t flags;
  uint8_t reserved0;      // 0
  uint32_t length;        // payload bytes of this frame
  uint32_t crc;           // CRC32C of this header (crc = 0) and the payload
  uint64_t seq;           // frame number on this link, over all streams and channels
  uint64_t message;       // message number on this channel (0-based)
  uint64_t offset;        // of the payload in the message
  uint64_t messageBytes;  // size of the whole message
  uint32_t tag;           // the message's tag (Connection::postSend)
  uint32_t reserved1;     // 0
};
static_assert(sizeof(FrameHeader) == 56);

inline constexpr uint32_t kMaxFrameBytes = 64u << 20;  // a receiver rejects anything larger

// The first bytes on a socket that re-opens a broken stream (dialer to the peer's WAN listener),
// and the answer. `recvBelow`: every frame of that stream numbered below it has arrived here.
struct ResumeHello {
  static constexpr uint32_t kMagic = 0x58535231;  // "XSR1"
  uint32_t magic;
  int32_t rank;      // the dialer
  int32_t channel;   // the link's key at the dialer's peer (its lowest channel)
  uint32_t stream;   // index of the stream in the link
  uint64_t job;
  uint64_t recvBelow;
};
static_assert(sizeof(ResumeHello) == 32);
struct ResumeReply {
  static constexpr uint32_t kMagic = 0x58535232;  // "XSR2"
  // The listener proved the secret but has no such link (its owner closed it): stop dialing.
  static constexpr uint32_t kNoSuchLink = 1;
  uint32_t magic;
  uint32_t flags;
  uint64_t recvBelow;
};
static_assert(sizeof(ResumeReply) == 16);

// How a link re-establishes a broken stream. Without one (set-ups that have no listener to call
// back, e.g. socketpairs in tests), a broken stream fails the link at once.
struct WanResume {
  bool dialer = false;  // this side dials again; the other waits for the call (and probes)
  SockAddr peer;        // the peer's WAN listener
  ResumeHello hello{};  // magic, rank, channel and job of this side's calls
  std::function<void(int fd)> prepare;  // socket set-up before connect (buffers, congestion, keepalive)
  std::chrono::milliseconds timeout{120000};
  bootstrap::JobSecret secret;  // proved to the peer's listener (bootstrap/auth.h)
};

struct WanOptions {
  size_t frameBytes = 64 << 10;
  size_t windowBytes = 4 << 20;   // staging: bytes accepted from callers, not yet acknowledged
  // Sizes from the path (adapt()): the window grows up to maxWindowBytes unless it is the
  // user's (fixedWindow); the streams' socket buffers (as the kernel counts them) up to
  // maxSocketBytes.
  bool fixedWindow = false;
  size_t maxWindowBytes = 256u << 20;
  int maxSocketBytes = 64 << 20;
  int socketBytes = 0;  // what the streams' buffers were set to at connect (0: autotuning)
  void size(const WanSizing& z) noexcept {
    windowBytes = z.windowBytes;
    fixedWindow = z.fixedWindow;
    socketBytes = z.socketBytes;
  }
  size_t earlyBytes = 256u << 20; // frames that arrived before their receive was posted; beyond
                                  // this a stream waits (TCP flow control) until some are taken
  // TLS on every stream (null: plain TCP). The side that dialed the sockets is the TLS client;
  // after a heal, the side that dials again (WanResume::dialer).
  std::shared_ptr<const TlsContext> tls;
  bool tlsClient = false;
};

class WanConnection;

// The streams between two ranks, shared by the channels that run over them.
// Thread safety: the send side (staging and writing frames) may also be driven by a WanProxy
// thread, so that staged bytes keep flowing after the caller's send has completed and the caller
// has moved on; it is guarded by a mutex. The receive side belongs to the caller's thread; a
// second mutex keeps the proxy's healing (which replaces sockets) out of it.
class WanLink {
 public:
  WanLink(std::string label, std::vector<Fd> streams, WanOptions options);
  WanLink(const WanLink&) = delete;
  WanLink& operator=(const WanLink&) = delete;
  const std::string& label() const noexcept { return label_; }
  size_t streamCount() const noexcept { return streams_.size(); }

  // The send side only, for the proxy: `pending` is set while anything waits to be written.
  // An error sticks and is returned by every channel's next progress().
  void flush(bool& moved, bool& pending) noexcept;
  // Streams with bytes waiting for socket space (the proxy polls them for POLLOUT).
  void pendingFds(std::vector<int>& out);

  // Healing (WanResume). enableResume() before use. heal() is the proxy's: it dials, probes and
  // gives up after the timeout, never blocking. adopt() is the ResumeAcceptor's: the peer
  // re-opened stream `index` on `fd`; this side answers and resends what the peer lacks.
  void enableResume(WanResume resume);
  void heal() noexcept;
  void adopt(uint32_t index, Fd fd, uint64_t peerRecvBelow) noexcept;
  bool healing() const noexcept { return healing_.load(std::memory_order_acquire); }

  // The proxy's, now and then: sizes the window and the socket buffers from what the kernel
  // measures of the path (TCP_INFO), so that the rate and latency settings are hints only.
  void adapt() noexcept;
  size_t windowBytes() const noexcept;  // the staging window now
  // The smallest round trip the kernel measured on any stream (TCP_INFO), microseconds; 0: none.
  double minRttUs() const noexcept;
  // Grows the staging window to `bytes` (never shrinks it), keeping what is staged and in flight.
  void growWindow(size_t bytes) noexcept;

  // For a closing owner, on the thread that owns the receive side: progresses until every frame
  // sent is acknowledged, the link fails or the deadline passes; false if frames were left.
  bool drain(std::chrono::steady_clock::time_point deadline) noexcept;

  // ---- The channels' side: its WanConnections call these; nothing else does.
  void attach(WanConnection* c, int channel);
  void detach(int channel) noexcept;
  uint64_t postSend(WanConnection* c, const void* data, size_t bytes, uint32_t tag) noexcept;
  // The header of channel `channel`'s message `message` when a stream holds one that waits for
  // its receive (a link of one channel leaves such frames in the socket); recvMu_ is taken.
  bool waitingHeader(int channel, uint64_t message, FrameHeader& out) const noexcept;
  // Moves everything of every channel (a frame for one may sit in front of another's).
  Status progress(bool& moved) noexcept;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept;
  bool allEnded() const noexcept;  // the peer closed every stream (takes recvMu_)
  Status checkRange(const FrameHeader& h) const;  // the frame lies inside its message
  Status badFrame(const std::string& why) const;  // ends the link: the peer's bytes lie
  // A channel took (or dropped) kept early frames of `bytes` (payload + header each).
  void releaseEarly(size_t bytes) noexcept { earlyHeld_ -= bytes; }

 private:
  using Clock = std::chrono::steady_clock;
  // minRttUs() under sendMu_; `up`: the streams with a sample.
  double minRttLocked(int& up) const noexcept;
  struct OutFrame {
    FrameHeader hdr;
    size_t stagingPos;  // where its payload starts in the staging ring (monotonic)
    size_t written = 0; // header + payload bytes written (on its current socket)
    bool acked = false;
  };
  // Re-opening: kDialing (connect) -> kAuthenticating (bootstrap::AuthDial: the listener's
  // challenge, our answer and ResumeHello, its proof and ResumeReply) -> kUp. With TLS,
  // kSecuring (its handshake) comes before kUp, at the start too.
  enum class StreamState { kUp, kBroken, kDialing, kAuthenticating, kSecuring };
  struct Stream {
    Fd fd;
    std::unique_ptr<TlsStream> tls;  // XSITE_WAN_TLS: between the stream and fd
    // Send side (sendMu_): the frames given to this stream, oldest first, until acknowledged;
    // inflight[writeIdx] is the one being written (== size: none).
    std::deque<OutFrame*> inflight;
    size_t writeIdx = 0;
    FrameHeader ackOut{};       // the ack frame being written
    bool ackActive = false;     // ... (it goes between frames, never inside one)
    size_t ackWritten = 0;      // ... bytes of it written
    uint64_t ackWant = 0;       // the receive side's recvBelow, to be acknowledged
    uint64_t ackSent = 0;       // the last value acknowledged
    Status sendFailed;          // a write failed; heal() breaks the stream
    // Healing (both locks).
    StreamState state = StreamState::kUp;
    Status why;                 // what broke it
    Clock::time_point brokenAt, nextTry, tryDeadline, securingSince;
    Fd trying;                  // a dial (or, waiting side, a probe) in progress
    bool probe = false;
    std::unique_ptr<bootstrap::AuthDial> dial;  // kAuthenticating
    // Receive side.
    uint64_t recvBelow = 0;     // every frame of this stream numbered below it has arrived
    FrameHeader in{};         // header being read, or waiting for room to buffer its payload
    size_t inGot = 0;         // header bytes read
    size_t payloadGot = 0;    // payload bytes of the current frame read
    uint32_t crc = 0;         // running checksum of the current frame
    char* dst = nullptr;      // where the payload goes, once routed
    std::unique_ptr<char[]> early;  // the payload's buffer when its receive is not posted
    bool routed = false;      // the header is checked and the payload has a place
    bool buffered = false;    // ... and that place is `early`
    bool discard = false;     // ... read only to be dropped: its channel has failed
    bool ended = false;  // the peer closed it between frames (the others may carry the rest)
    // Buffer sizes set by hand (at connect, or by adapt(): sendMu_), which turns the kernel's
    // autotuning off.
    bool sndLocked = false, rcvLocked = false;
  };

  bool up(const Stream& s) const noexcept { return s.state == StreamState::kUp && s.sendFailed.isOk(); }
  // An up stream with bytes to write: a frame given to it, or an acknowledgement (which a
  // flush starts as soon as no frame is half written).
  bool writing(const Stream& s) const noexcept {
    return up(s) && (s.writeIdx < s.inflight.size() || s.ackActive || s.ackWant > s.ackSent ||
                     (s.tls && s.tls->outPending()));
  }
  // A stream's bytes, through TLS when it has it (like socketSend / socketRecv).
  Result<size_t> sendOn(Stream& s, const iovec* iov, int iovcnt) noexcept;
  Result<size_t> recvOn(Stream& s, void* data, size_t bytes) noexcept;
  // kSecuring: starts TLS on the stream's socket (both locks).
  void startTls(Stream& s, bool client, Clock::time_point now);
  void secureStream(Stream& s, Clock::time_point now) noexcept;
  Status flushLocked(bool& moved) noexcept;
  Status stage(bool& moved) noexcept;
  Status writeStreams(bool& moved) noexcept;
  Status readStream(Stream& s, bool& moved) noexcept;
  Status route(Stream& s) noexcept;
  Status bufferPayload(Stream& s) noexcept;
  Status frameDone(Stream& s) noexcept;
  void releaseStaging() noexcept;
  Status acknowledge(Stream& s, uint64_t below) noexcept;  // sendMu_
  Status writeStream(Stream& s, bool& moved) noexcept;     // sendMu_
  // A socket error on `s` (receive side): with healing the stream breaks and heals, else the
  // error ends the link.
  Status streamFailed(Stream& s, const Status& why) noexcept;
  void breakFailedSends() noexcept;                        // both locks
  bool pendingLocked() const noexcept;                   // sendMu_: anything left to write
  // Healing; both locks held.
  void breakStream(Stream& s, Status why) noexcept;  // a copy: `why` may be s.sendFailed
  Status refused(const Stream& s) const;  // the peer's listener refuses: its process is gone
  void resumeStream(Stream& s, Fd fd, uint64_t peerRecvBelow) noexcept;
  void healStream(Stream& s, Clock::time_point now) noexcept;
  void startTry(Stream& s, Clock::time_point now) noexcept;
  void retryLater(Stream& s, Clock::time_point now) noexcept;
  void updateHealing() noexcept;
  void watchIdle(Clock::time_point now) noexcept;
  void failLink(const Status& why) noexcept;
  int indexOf(const Stream& s) const noexcept { return static_cast<int>(&s - streams_.data()); }

  std::string label_;
  WanOptions opt_;
  // Lock order: recvMu_, then sendMu_. recvMu_ guards the receive side (the owner's progress)
  // against heal() and adopt(), which replace a stream's socket.
  mutable std::mutex recvMu_;
  std::vector<Stream> streams_;
  std::unique_ptr<WanResume> resume_;  // null: a broken stream fails the link
  std::atomic<bool> healing_{false};   // some stream is not up
  Clock::time_point nextWatch_{};      // heal()'s (the proxy thread's) alone
  Clock::time_point nextAdapt_{};      // adapt()'s (the proxy thread's) alone, with:
  Clock::time_point rateSince_{};      // ... the start of the rate measurement
  uint64_t rateAcked_ = 0, rateReceived_ = 0;  // ... and the counters then
  uint64_t ackedBytes_ = 0;            // payload bytes the peer acknowledged (sendMu_)
  std::atomic<uint64_t> receivedBytes_{0};  // payload bytes that arrived (the receive side's)
  void growWindowLocked(size_t bytes) noexcept;  // sendMu_ held
  std::vector<WanConnection*> byChannel_;  // 256 entries, by channel id (nullptr: none)
  std::vector<WanConnection*> channels_;   // the attached ones
  std::vector<bool> closed_;               // by channel id: was attached, is no more
  Status error_;  // sticky: a bad frame or a stream that cannot heal ends the link for every channel
                  // (a mismatched message size fails only its channel)
  size_t earlyHeld_ = 0;  // what the buffered early frames count (payload + header each)
  mutable std::mutex sendMu_;  // guards the send queue, the staging ring, frames_, the streams' send side
                               // and the channels' send queues
  Status sendError_;   // sticky, from the proxy
  // Send side: a staging ring of opt_.windowBytes, frames in order of creation, and the
  // channels whose sends wait to be staged, in the order they were posted.
  std::unique_ptr<char[]> staging_;  // uninitialized: pages cost memory only once used
  size_t stagingBytes_ = 0;
  size_t stageHead_ = 0, stageTail_ = 0;  // monotonic byte counters
  std::deque<std::unique_ptr<OutFrame>> frames_;
  std::deque<WanConnection*> sendOrder_;
  size_t nextUnassigned_ = 0;             // index in frames_ of the first frame without a stream
  uint64_t nextSeq_ = 0;
  size_t stagedOfHead_ = 0;               // bytes of the head send already staged
  bool headFramed_ = false;               // the head send has emitted at least one frame
};

// One channel of a WanLink: an ordered message connection to the peer.
class WanConnection final : public Connection {
 public:
  // A connection with streams of its own (channel 0 of a link of its own).
  WanConnection(int peer, std::string label, std::vector<Fd> streams, WanOptions options);
  // Channel `channel` (0..255, once per link) of a shared link.
  WanConnection(int peer, std::string label, std::shared_ptr<WanLink> link, int channel);
  ~WanConnection() override;
  using Connection::postSend;
  uint64_t postSend(const void* data, size_t bytes, uint32_t tag) noexcept override;
  bool probe(Arrival& next) noexcept override;
  Status progress(bool& moved) noexcept override;
  bool appendPollFds(std::vector<pollfd>& out) const noexcept override;
  WanLink& link() noexcept { return *link_; }

  // ---- The link's side: its WanLink drives the channel through these; nothing else calls them.
  int channel() const noexcept { return channel_; }
  // The send being staged (the link's sendMu_ held) and its message number on this channel.
  struct Send {
    const char* data;
    size_t bytes;
    uint32_t tag;
    uint64_t message;
  };
  Send headSend() noexcept {
    const Op* op = frontSend();
    return Send{op->data, op->bytes, op->tag, sendMessage_};
  }
  void sendStaged() noexcept {  // every byte of the head send is staged: it is complete
    completeSend();
    ++sendMessage_;
  }
  // Receive side (the link's recvMu_ held): the message the head receive waits for, whether one
  // is posted and its buffer (null for an empty one), whether the channel has failed, whether it
  // waits for input at all.
  uint64_t recvMessage() const noexcept { return recvMessage_; }
  bool headRecv(char*& buffer) noexcept {
    Op* op = frontRecv();
    buffer = op != nullptr ? op->data : nullptr;
    return op != nullptr;
  }
  bool failed() const noexcept { return !error_.isOk(); }
  bool wantsInput() const noexcept { return recvQueued() || probing_; }
  // Checks a frame of the head receive against it and claims its byte range. A message the
  // receive does not take (Connection::takes) fails this channel alone (error_; `take` false:
  // drop the frame).
  Status accept(const FrameHeader& h, bool& take) noexcept;
  void unaccept(const FrameHeader& h) noexcept;  // a frame cut off by a broken stream
  // Counts a delivered frame's bytes; completes the head receive when they are all there.
  void delivered(size_t bytes) noexcept;
  // A frame of a receive not posted yet, with its payload, kept until the receive is posted.
  void keepEarly(const FrameHeader& h, std::unique_ptr<char[]> payload);
  // Hands kept frames to the head receive (and the ones after it), as far as posted.
  Status takeEarly(bool& moved) noexcept;
  void dropEarly() noexcept;

 private:
  struct EarlyFrame {
    FrameHeader hdr;
    std::unique_ptr<char[]> payload;
  };

  std::shared_ptr<WanLink> link_;
  int channel_;
  Status error_;  // sticky: this channel failed (its frames are dropped from then on)
  uint64_t sendMessage_ = 0;  // guarded by the link's sendMu_
  // Receive side: progress of the head receive, and frames of receives not yet posted.
  uint64_t recvMessage_ = 0;
  bool probing_ = false;   // probe() found nothing yet: appendPollFds() waits to read
  uint64_t recvSize_ = 0;  // the head receive's message size and tag, from its first frame
  uint32_t recvTag_ = 0;
  size_t recvBytes_ = 0;
  size_t recvClaimed_ = 0;                 // bytes of the frames accepted for it
  std::map<uint64_t, uint64_t> recvRanges_;  // offset -> length of the frames accepted
  std::map<uint64_t, std::vector<EarlyFrame>> early_;  // by message number
};

}  // namespace xsite::transport::wan
