// The transport contract: one ordered, reliable, full-duplex message channel between two ranks.
// Every backend (loopback, shm, tcp, ucx, wan) implements Connection and is created by
// Fabric::establish(). Everything here is non-blocking and noexcept on the data path.
//
// Semantics (pinned by tests/transport/conformance_test.cc for every backend):
//  - postSend/postRecv queue a message; messages complete in the order posted, per direction;
//  - the n-th send on one side matches the n-th receive on the other. A receive posted without
//    an Arrival takes exactly the posted size; one posted with an Arrival takes any message up to
//    the posted size and learns its size and tag there (NCCL's irecv, MPI's MPI_Get_count). A
//    message larger than the receive, or of another size where the size is exact, is an error
//    naming the peer and both sizes, never a truncation;
//  - a send may carry a 32-bit tag, which the receive's Arrival reports;
//  - probe() learns the next message's size and tag before any receive is posted for it, so that
//    the caller can choose where it lands (NCCL's grouped receives pick a buffer by tag);
//  - a posted buffer must stay valid (and a send buffer unmodified) until its ticket is done;
//  - progress() moves what it can without blocking and reports a dead or misbehaving peer.
#pragma once

#include <poll.h>
#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "util/status.h"

namespace xsite::params {
class Params;
}

namespace xsite::transport {

enum class Backend { kLoopback, kShm, kTcp, kWan, kUcx };
const char* backendName(Backend b) noexcept;
// False for a backend this build left out (kUcx without UCX).
bool backendBuilt(Backend b) noexcept;
// What the settings choose between domains of a site (XSITE_SITE_TRANSPORT: ucx, or auto in a
// build with UCX -> kUcx; else kTcp) and between sites (XSITE_WAN_TRANSPORT: streams -> kWan, tcp
// -> kTcp), for the library and the net plugin alike; the registry has refused other words.
// Throw Error(kInvalidUsage) for ucx in a build without it, and for XSITE_WAN_TLS=1 over tcp.
Backend sameSiteBackend(const params::Params& p);
Backend otherSiteBackend(const params::Params& p);

// What a receive posted with one learns when it completes: the message's size and tag.
struct Arrival {
  size_t bytes = 0;
  uint32_t tag = 0;
};

class Connection {
 public:
  Connection(int peer, std::string label) : peer_(peer), label_(std::move(label)) {}
  virtual ~Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  int peer() const noexcept { return peer_; }
  const std::string& label() const noexcept { return label_; }  // e.g. "rank 5 ring (tcp)"

  // Queue a message; returns its ticket (1-based count of messages posted in that direction).
  // A backend whose sends also progress on another thread (WAN streams) overrides postSend; one
  // that hands every operation to a library at once (UCX) overrides both, calling these first.
  virtual uint64_t postSend(const void* data, size_t bytes, uint32_t tag) noexcept;
  uint64_t postSend(const void* data, size_t bytes) noexcept { return postSend(data, bytes, 0); }
  // `arrival` null: the message must be exactly `bytes`. Otherwise it may be smaller, and its
  // size and tag are stored in *arrival (which must stay valid) when the ticket is done.
  virtual uint64_t postRecv(void* data, size_t bytes, Arrival* arrival) noexcept;
  uint64_t postRecv(void* data, size_t bytes) noexcept { return postRecv(data, bytes, nullptr); }
  // With no receive pending: true and the next message's size and tag once they are known here,
  // else false (progress() and ask again). A stream backend reads the next header only after a
  // probe or a posted receive asked for it, so a peer that closes after its last message is never
  // an error to a side that expects nothing more.
  virtual bool probe(Arrival& next) noexcept = 0;
  uint64_t sendsDone() const noexcept { return sendsDone_.load(std::memory_order_acquire); }
  uint64_t recvsDone() const noexcept { return recvsDone_; }
  bool idle() const noexcept { return sends_.empty() && recvs_.empty(); }

  // Moves bytes without blocking; sets `moved` when anything happened.
  virtual Status progress(bool& moved) noexcept = 0;

  // For an idle caller that wants to sleep until this connection can move: appends the file
  // descriptors and events (readable while a receive is posted or a probe waits for the next
  // message, writable while a send waits for socket space) and returns true; false when the
  // backend has no descriptor to wait on (shared memory), so the caller must poll by time.
  virtual bool appendPollFds(std::vector<pollfd>& out) const noexcept { return false; }

  // The owner gave up on the peer (Communicator::abort(), a dead rank): the destructor closes at
  // once, without telling the peer or waiting for it. Backends whose close waits override it.
  virtual void abandon() noexcept {}

 protected:
  struct Op {
    char* data;
    size_t bytes;     // send: the message; receive: the most it takes
    uint32_t tag = 0;
    Arrival* arrival = nullptr;  // receive: its size and tag go here (null: exactly `bytes`)
    size_t done = 0;  // payload bytes moved so far
  };
  Op* frontSend() noexcept { return sends_.empty() ? nullptr : &sends_.front(); }
  Op* frontRecv() noexcept { return recvs_.empty() ? nullptr : &recvs_.front(); }
  bool sendQueued() const noexcept { return !sends_.empty(); }
  bool recvQueued() const noexcept { return !recvs_.empty(); }
  void completeSend() noexcept;
  // The head receive is done: `bytes` (checked by takes()) with `tag` arrived.
  void completeRecv(size_t bytes, uint32_t tag) noexcept;
  // Whether receive `op` takes a message of `sent` bytes; an error naming both sizes if not.
  Status takes(const Op& op, uint64_t sent) const;
  Status peerGone(const std::string& why) const;

 private:
  int peer_;
  std::string label_;
  std::deque<Op> sends_, recvs_;
  uint64_t sendsPosted_ = 0, recvsPosted_ = 0, recvsDone_ = 0;
  std::atomic<uint64_t> sendsDone_{0};
};

// A message that does not fit its receive, worded once for every backend and the net plugin:
// `who` (a connection's label) sent `sent` ("a 2000-byte message") where this rank posted
// `posted` bytes (`atMost`: a receive of at most that many). kInvalidUsage.
Status sizeError(const std::string& who, const std::string& sent, size_t posted, bool atMost);
// "a 2000-byte message"
std::string messageOf(uint64_t bytes);

// Non-blocking socket I/O for the socket backends: bytes moved (0: would block), or an error
// that starts with `who` (the connection's label; a closed or reset socket is kRemote).
Result<size_t> socketRecv(const std::string& who, int fd, void* data, size_t bytes) noexcept;
Result<size_t> socketSend(const std::string& who, int fd, const iovec* iov, int iovcnt) noexcept;

// Each message on a byte stream (shm ring or socket) starts with this header.
struct MessageHeader {
  static constexpr uint32_t kMagic = 0x58535431;  // "XST1"
  uint32_t magic;
  uint32_t tag;
  uint64_t bytes;
};
static_assert(sizeof(MessageHeader) == 16);

}  // namespace xsite::transport
