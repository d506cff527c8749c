// The net plugin's connections: one-directional TCP comms, as NCCL's proxy drives them.
//
// Setup (never blocks): listen() binds a non-blocking socket and writes a ConnectHandle; the
// sender's connectStep() is called until it yields a SendComm (TCP connect, then a Hello that
// echoes the listener's nonce and names the sender's site); the receiver's ListenComm::acceptStep()
// likewise until it yields a RecvComm.
//
// Framing: every isend is one message, a MsgHeader (magic, tag, size) then the payload. NCCL's
// irecv posts the largest size it accepts; the real size travels in the header and test()
// reports it. A message larger than the buffer it lands in is an error naming the peer, never a
// truncation. A grouped receive (n <= kMaxRecvs buffers) takes the next n messages; each lands
// in the not-yet-filled buffer whose tag matches. Requests complete in posting order; test() on
// any of them moves the comm's bytes, so completions may be polled in any order.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "plugin/abi/common.h"
#include "plugin/net/devices.h"
#include "util/socket.h"
#include "util/status.h"

namespace xsite::plugin::net {

inline constexpr int kRecvRequests = NCCL_NET_MAX_REQUESTS;
inline constexpr int kSendRequests = NCCL_NET_MAX_REQUESTS * kMaxRecvs;  // NCCL_ABI.md §2.1

// What a listener publishes through NCCL (at most NCCL_NET_HANDLE_MAXSIZE bytes).
struct ConnectHandle {
  static constexpr uint32_t kMagic = 0x58534e31;  // "XSN1"
  static constexpr uint16_t kVersion = 1;
  uint32_t magic;
  uint16_t version;
  uint16_t port;   // network byte order
  uint32_t ip;     // IPv4, network byte order
  int32_t site;    // the listener's site (XSITE_SITE)
  uint64_t nonce;  // echoed by the sender's Hello: a stray connection is dropped
  // The sender's connection in progress: NCCL hands the same handle buffer to every connect()
  // call of one connection, so the state lives here. Null in the listener's copy.
  void* pending;
};
static_assert(sizeof(ConnectHandle) <= NCCL_NET_HANDLE_MAXSIZE,
              "the handle must fit NCCL's buffer");

struct Hello {
  static constexpr uint32_t kMagic = 0x58534831;  // "XSH1"
  uint32_t magic;
  int32_t site;
  uint64_t nonce;
};
static_assert(sizeof(Hello) == 16);

struct MsgHeader {
  static constexpr uint32_t kMagic = 0x58534d31;  // "XSM1"
  uint32_t magic;
  int32_t tag;
  uint64_t bytes;
};
static_assert(sizeof(MsgHeader) == 16);

// Settings every comm needs, read once at init.
struct LinkSettings {
  int site = 0;
  int socketBufBytes = 0;     // XSITE_SOCKET_BUF_SIZE (0: kernel autotuning)
  std::string wanCongestion;  // XSITE_WAN_CC, applied to connections whose peer is in another site
};

class Comm;

struct Request {
  Comm* comm = nullptr;
  bool used = false;
  bool done = false;
  int n = 0;        // buffers (1 for a send)
  int pending = 0;  // buffers not yet filled
  char* data[kMaxRecvs] = {};
  size_t posted[kMaxRecvs] = {};  // send: the message size; recv: the buffer sizes
  int tags[kMaxRecvs] = {};
  size_t got[kMaxRecvs] = {};
  bool filled[kMaxRecvs] = {};
  size_t sent = 0;  // send: header + payload bytes written
  MsgHeader header{};
};

class Comm {
 public:
  Comm(Fd fd, std::string label, int requests);
  virtual ~Comm() = default;
  const std::string& label() const { return label_; }
  // Polls one request: moves bytes, then reports done and (when done and `sizes` is non-null)
  // the size of each buffer; a done request is free again.
  Status test(Request* request, int* done, int* sizes);

 protected:
  virtual Status progress() = 0;  // called with mu_ held
  Request* allocRequest();        // null when all are in flight
  Status peerError(const std::string& what) const;
  Status ioError(const char* op, int err) const;

  Fd fd_;
  std::string label_;
  std::mutex mu_;
  Status error_;  // sticky: the first failure of this comm
  std::vector<Request> pool_;
  std::deque<Request*> queue_;  // posted, not yet done, in posting order
};

class SendComm final : public Comm {
 public:
  using Comm::Comm;
  // *request = null: all kSendRequests are in flight; call again later.
  Status post(void* data, size_t size, int tag, void** request);

 private:
  Status progress() override;
};

class RecvComm final : public Comm {
 public:
  using Comm::Comm;
  // optional: NCCL stored NCCL_NET_OPTIONAL_RECV_COMPLETION in *request (LL/LL128); this
  // version completes such a receive like any other, which the contract allows.
  Status post(int n, void** data, const size_t* sizes, const int* tags, void** request);

 private:
  Status progress() override;
  MsgHeader header_{};
  size_t headerGot_ = 0;
  int target_ = -1;  // buffer of queue_.front() the current payload lands in; -1: reading a header
  size_t payloadGot_ = 0;
};

class ListenComm {
 public:
  ListenComm(Fd fd, uint64_t nonce, LinkSettings settings);
  // *recvComm = null until a sender has connected and said hello.
  Status acceptStep(RecvComm** recvComm);

 private:
  Fd fd_;
  uint64_t nonce_;
  LinkSettings settings_;
  Fd pending_;  // accepted, hello not complete
  std::string pendingPeer_;
  Hello hello_{};
  size_t helloGot_ = 0;
};

// Receiver side: binds to the device's address on a free port and fills the handle.
Status listen(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
              ListenComm** listenComm);
// Sender side, called until *sendComm is non-null.
Status connectStep(const LinkSettings& settings, ConnectHandle* handle, SendComm** sendComm);

}  // namespace xsite::plugin::net
