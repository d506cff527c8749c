// The net plugin's connections: one-directional comms, as NCCL's proxy drives them.
//
// Setup (never blocks): listen() binds a non-blocking socket and writes a ConnectHandle; the
// sender's connectStep() is called until it yields a SendComm (TCP connects, then a Hello on each
// socket that echoes the listener's nonce and names the sender's site, the comm's backend and the
// socket's place in it); the receiver's ListenComm::acceptStep() likewise until every socket of
// the comm has said hello and it yields a RecvComm.
//
// The sender chooses the backend from the handle's site (the Hello tells the receiver); the
// bytes then move over the library's own transports (src/transport), as between its ranks:
//  - same site, site transport UCX (XSITE_SITE_TRANSPORT=ucx, or auto with UCX built, on both
//    ends: the handle says whether the listener takes UCX): UCP tagged messages through the
//    device's UCX worker (ucx_comm.h); the socket only carries the setup and the goodbye;
//  - same site otherwise (or XSITE_WAN_TRANSPORT=tcp across sites): transport::tcp's connection
//    over the one socket;
//  - another site: XSITE_WAN_STREAMS sockets prepared like Fabric's WAN links under one
//    transport::wan::WanConnection (wan_comm.h): frames striped over the streams, sends staged
//    eagerly into a window of XSITE_WAN_WINDOW and kept flowing by a proxy thread, so NCCL's
//    slots no longer bound the bytes in flight.
//
// Messages: every isend is one message of the connection, carrying NCCL's tag. NCCL's irecv
// posts the largest size it accepts: a single receive goes to the connection at once, straight
// into NCCL's buffer, and learns the size that arrived (transport::Arrival), which test()
// reports. A grouped receive (n <= kMaxRecvs buffers) takes the next n messages; each lands in
// the not-yet-filled buffer whose tag matches, which the connection's probe() tells before the
// message is received. A message larger than the buffer it lands in is an error naming the peer,
// never a truncation. Requests complete in posting order; test() on any of them moves the comm's
// bytes, so completions may be polled in any order.
//
// Compression (XSITE_NET_CODEC=lz4|zstd, cross-site comms only): a payload of at least
// kMinCompressBytes is encoded as bytes (the net never knows the data type) and goes with
// kEncodedTag set in its tag (NCCL's tags are ranks, never negative); the receiver, told by the
// Hello that the sender may encode, probes each message, takes an encoded one into a buffer of its
// own and decodes it into NCCL's buffer (which validates it). A payload that does not shrink goes
// as the codec's raw form, so compression never costs more than its 24-byte header.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bootstrap/auth.h"
#include "compress/codec.h"
#include "plugin/abi/common.h"
#include "plugin/net/devices.h"
#include "transport/fabric.h"
#include "transport/transport.h"
#include "transport/wan/wan.h"
#include "util/socket.h"
#include "util/status.h"

namespace xsite::plugin::net {

inline constexpr int kRecvRequests = NCCL_NET_MAX_REQUESTS;
inline constexpr int kSendRequests = NCCL_NET_MAX_REQUESTS * kMaxRecvs;  // NCCL_ABI.md §2.1

// What a listener publishes through NCCL (at most NCCL_NET_HANDLE_MAXSIZE bytes).
struct ConnectHandle {
  static constexpr uint32_t kMagic = 0x58534e31;  // "XSN1"
  static constexpr uint16_t kVersion = 4;  // 4: the hello names a transport::Backend and flags
  uint32_t magic;
  uint16_t version;
  uint16_t reserved;
  WireAddr addr;   // the listener's address (IPv4 or IPv6) and port
  int32_t site;    // the listener's site (XSITE_SITE)
  uint64_t nonce;  // echoed by the sender's Hello: a stray connection is dropped
  // The sender's connection in progress: NCCL hands the same handle buffer to every connect()
  // call of one connection, so the state lives here. Null in the listener's copy.
  void* pending;
  uint32_t flags;  // kTakesUcx: the listener accepts same-site comms over UCX
  static constexpr uint32_t kTakesUcx = 1;
  // kNoInterface: the listener found no usable interface and listens on loopback instead
  static constexpr uint32_t kNoInterface = 2;
  // The port (network byte order) of the listener's resume listener, where a cross-site sender
  // dials a broken stream again (wan_comm.h); 0: the listener's comms do not heal.
  uint16_t resumePort;
};
static_assert(sizeof(ConnectHandle) <= NCCL_NET_HANDLE_MAXSIZE,
              "the handle must fit NCCL's buffer");
// Where tests and tools look into a handle (tests/plugin, tests/launcher/test_tun_nic.sh).
static_assert(offsetof(ConnectHandle, addr) == 8 && offsetof(ConnectHandle, site) == 28 &&
              offsetof(ConnectHandle, resumePort) == 52);

struct Hello {
  static constexpr uint32_t kMagic = 0x58534832;  // "XSH2"
  static constexpr uint16_t kEncodes = 1;  // flags: the sender may encode payloads
  uint32_t magic;
  int32_t site;  // the sender's site
  uint64_t nonce;
  uint16_t stream;   // this socket's index in the comm
  uint16_t streams;  // sockets of the comm: 1 unless the backend is kWan
  uint16_t backend;  // transport::Backend: kTcp, kWan or kUcx
  uint16_t flags;
};
static_assert(sizeof(Hello) == 24);

// Set in the tag of a message whose payload is encoded (XSITE_NET_CODEC).
inline constexpr uint32_t kEncodedTag = 1u << 31;
inline constexpr size_t kMinCompressBytes = 64 << 10;

// Settings every comm needs, read once at init.
struct LinkSettings {
  int site = 0;
  // Same-site comms over UCX (XSITE_SITE_TRANSPORT=ucx, or auto in a build with UCX).
  bool siteUcx = false;
  // The library's reading of the socket and WAN settings (transport::fabricOptionsFromParams:
  // buffers, keepalive, congestion control, frames, healing), and the job's secret, which
  // every socket proves before its hello.
  transport::FabricOptions fabric;
  // Cross-site comms: fabric.wan.streams sockets under a WanConnection, or 0 for one plain
  // socket (XSITE_WAN_TRANSPORT=tcp).
  int wanStreams = 4;
  transport::wan::WanSizing wanSizing{1 << 20, 4 << 20, false};  // from fabric.wan's hints
  compress::CodecId wanCodec = compress::CodecId::kNone;   // XSITE_NET_CODEC (lossless only)
  std::shared_ptr<const transport::wan::TlsContext> wanTls;  // XSITE_WAN_TLS=1 (null: plain)
  std::chrono::milliseconds timeout{300000};         // XSITE_TIMEOUT (Comm::test)
};


// What a comm over a library transport keeps beside its connection while it lives (the WAN
// link's place in the proxy thread and the resume listener, wan_comm.h).
class ConnectionLease {
 public:
  virtual ~ConnectionLease() = default;
};

// A WAN stream's socket set-up (buffers, congestion control, keepalive), before connect().
void prepareStream(int fd, const LinkSettings& settings);

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
  int handed = 0;       // receive: messages handed to the connection
  uint64_t ticket = 0;  // send: the connection's ticket of its message
  bool started = false;          // UCX: handed to UCP
  void* ucx[kMaxRecvs] = {};     // UCX: UCP's requests, one per buffer (null: none or done)
};

class Comm {
 public:
  Comm(std::string label, int requests);
  virtual ~Comm() = default;
  const std::string& label() const { return label_; }
  // Polls one request: moves bytes, then reports done and (when done and `sizes` is non-null)
  // the size of each buffer; a done request is free again. When requests are in flight and
  // none completes for `timeout` (XSITE_TIMEOUT), the comm fails with kTimeout: a silent peer
  // is an error, not a hang.
  Status test(Request* request, int* done, int* sizes);
  void setTimeout(std::chrono::milliseconds t) { timeout_ = t; }

 protected:
  virtual Status progress() = 0;  // called with mu_ held
  // progress() and the timeout; with mu_ held.
  Status advance();
  // Queues a posted request (its progress clock starts when the queue was empty).
  void enqueue(Request* r);
  Request* allocRequest();        // null when all are in flight
  Status peerError(const std::string& what) const;

  std::string label_;
  std::mutex mu_;
  Status error_;  // sticky: the first failure of this comm
  std::vector<Request> pool_;
  std::deque<Request*> queue_;  // posted, not yet done, in posting order
  std::chrono::milliseconds timeout_{300000};
  std::chrono::steady_clock::time_point lastMove_{};  // a request completed, or the queue filled
};

class SendComm : public Comm {
 public:
  SendComm(std::string label) : Comm(std::move(label), kSendRequests) {}
  // *request = null: all kSendRequests are in flight; call again later.
  Status post(void* data, size_t size, int tag, void** request);
};

class RecvComm : public Comm {
 public:
  RecvComm(std::string label) : Comm(std::move(label), kRecvRequests) {}
  // optional: NCCL stored NCCL_NET_OPTIONAL_RECV_COMPLETION in *request (LL/LL128); this
  // version completes such a receive like any other, which the contract allows.
  Status post(int n, void** data, const size_t* sizes, const int* tags, void** request);

 protected:
  // Buffer `target` of queue_.front() now holds `bytes`; completes the request when it is full.
  void fill(int target, size_t bytes);
};

// A comm over one of the library's connections (tcp, WAN streams); `lease` (may be null) is
// released before the connection closes.
class TransportSendComm final : public SendComm {
 public:
  TransportSendComm(std::unique_ptr<transport::Connection> conn,
                    std::unique_ptr<ConnectionLease> lease, compress::CodecId codec);

 private:
  Status progress() override;
  std::unique_ptr<transport::Connection> conn_;
  std::unique_ptr<ConnectionLease> lease_;  // (declared after conn_: released first)
  std::unique_ptr<compress::Codec> codec_;  // null: payloads go as they are
  size_t handed_ = 0;                       // queue_'s first requests handed to conn_
  std::deque<std::vector<char>> encoded_;   // per handed request: its encoding (or nothing)
};

class TransportRecvComm final : public RecvComm {
 public:
  // `encodes`: the sender may encode payloads (Hello::kEncodes).
  TransportRecvComm(std::unique_ptr<transport::Connection> conn,
                    std::unique_ptr<ConnectionLease> lease, bool encodes);

 private:
  // A message handed to the connection, until it lands.
  struct Landing {
    Request* r;
    int target;    // buffer of r it fills
    bool encoded;  // into wire_ first
    transport::Arrival arrival;
  };
  Status progress() override;
  Status land(Landing& l);  // the connection completed l's receive
  // Hands the next message's receive to the connection; false when it cannot yet.
  Result<bool> handNext();
  std::unique_ptr<transport::Connection> conn_;
  std::unique_ptr<ConnectionLease> lease_;
  bool encodes_;
  std::deque<Landing> landings_;  // handed, in order (a deque keeps their Arrivals in place)
  uint64_t landed_ = 0;           // conn_'s receives seen complete
  std::vector<char> wire_;        // an encoded payload, until decoded
  std::unique_ptr<compress::Codec> lz4_, zstd_;  // decoders, made on first use (the sender chose)
};

struct UcxWorker;  // ucx_comm.h

class ListenComm {
 public:
  // `ucx`: the device's UCX worker when same-site comms may use UCX, else null.
  ListenComm(Fd fd, uint64_t nonce, LinkSettings settings, std::shared_ptr<UcxWorker> ucx);
  // *recvComm = null until every socket of the sender's comm has connected and said hello.
  Status acceptStep(RecvComm** recvComm);

 private:
  static constexpr size_t kMaxAccepted = 1024;
  static constexpr std::chrono::seconds kAcceptLimit{10};
  // A valid hello: the socket takes its place in the comm; false if it does not fit.
  bool place(const Hello& h, const std::string& peer, Fd& fd);
  // A complete kUcx hello: answers with a comm id and the worker's address.
  Status acceptUcx(RecvComm** recvComm, const std::string& label);
  Fd fd_;
  uint64_t nonce_;
  LinkSettings settings_;
  std::shared_ptr<UcxWorker> ucx_;
  bootstrap::AuthListener callers_{settings_.fabric.secret, sizeof(Hello), kAcceptLimit,
                                   kMaxAccepted};
  Hello first_{};                   // the first valid hello: the comm's backend, streams, site
  std::string peer_;
  std::vector<Fd> streams_;  // by Hello::stream
  int missing_ = 0;
};

// Receiver side: binds to the device's address on a free port and fills the handle.
Status listen(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
              ListenComm** listenComm);
// Sender side, called until *sendComm is non-null; `device` names the UCX worker of a UCX comm.
Status connectStep(const Device& device, const LinkSettings& settings, ConnectHandle* handle,
                   SendComm** sendComm);

}  // namespace xsite::plugin::net
