// Cross-site comms of the net plugin: the comm's sockets (XSITE_WAN_STREAMS of them, prepared
// like Fabric's WAN links) under one transport::wan::WanConnection.
//
// Send: an isend hands the connection two messages, the 16-byte MsgHeader and the payload (none
// when it is empty); the request completes once both are staged (copied into the connection's
// window of XSITE_WAN_WINDOW bytes, eight bandwidth-delay products by default), so NCCL reuses its
// slot while the bytes are still on their way and its 8 slots no longer bound the WAN. One
// process-wide WanProxy thread keeps staged bytes flowing into the sockets between NCCL's test()
// calls; it runs while any WAN send comm is open. Closing a send comm first moves what is staged
// into the sockets (a dead peer ends the wait early); the kernel delivers them after the close,
// and the receiving WanConnection reads on while any stream still carries data.
//
// Receive: WanConnection needs the exact size of each message, so the header is received first
// (only while NCCL has a receive posted: until then the data waits in the socket buffers), then
// the payload is posted with the size it announced, straight into NCCL's buffer.
//
// Healing (XSITE_WAN_RECONNECT_TIMEOUT > 0, as in the library: docs/reliability.md): a stream
// that is reset, times out or fails to write is dialed again by the sender, and each side resends
// what the other lacks, so NCCL's requests complete as if nothing happened. NCCL closes a listen
// comm once it is connected, so the receiving process keeps a resume listener per address that
// listen() used (its port travels in the handle) for its whole life; the re-dial names the link
// by the handle's nonce and proves the job's secret like any connection. The proxy thread heals
// both ends and polls the resume listeners.
//
// Compression (XSITE_NET_CODEC=lz4|zstd): a payload of at least kMinCompressBytes is encoded as
// bytes (the net never knows the data type) before it is staged; the header then says the size
// on the wire beside the size NCCL sent, the receiver takes the encoding into a buffer of its own
// and decodes it into NCCL's buffer (which validates it). A payload that does not shrink goes as
// the codec's raw form, so compression never costs more than its 24-byte header.
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "plugin/net/comm.h"
#include "transport/wan/resume.h"
#include "transport/wan/wan.h"

namespace xsite::plugin::net {

// The header of a cross-site message: NCCL's tag and size, and the size of the encoded payload
// on the wire (0: the payload goes as it is, msg.bytes long).
struct WanHeader {
  MsgHeader msg;
  uint64_t wireBytes;
};
static_assert(sizeof(WanHeader) == 24);

// The resume listener of `ip` (made on first use, kept for the process's life): its port, in
// network byte order, for the handle. Throws Error(kSystem) when it cannot listen.
uint16_t resumePort(const std::string& ip, const LinkSettings& settings);

class WanSendComm final : public SendComm {
 public:
  // `resume`: the receiver's resume listener (port 0: no healing); `key`: the handle's nonce.
  WanSendComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings,
              const SockAddr& resume, uint64_t key);
  ~WanSendComm() override;

 private:
  Status progress() override;
  void drain();  // staged bytes into the sockets (bounded; a dead peer ends it early)
  std::unique_ptr<transport::wan::WanConnection> conn_;
  std::unique_ptr<compress::Codec> codec_;  // null: payloads go as they are
  size_t handed_ = 0;  // queue_'s first requests already handed to conn_
  // Per handed request, in queue_ order: its header and its encoded payload (kept until staged).
  std::deque<WanHeader> headers_;
  std::deque<std::vector<char>> encoded_;
};

class WanRecvComm final : public RecvComm {
 public:
  // `ip`: the address it was accepted on (its resume listener's); `key`: the handle's nonce.
  // Heals when XSITE_WAN_RECONNECT_TIMEOUT > 0.
  WanRecvComm(std::vector<Fd> streams, std::string label, const LinkSettings& settings,
              const std::string& ip, uint64_t key);
  ~WanRecvComm() override;

 private:
  enum class Stage { kIdle, kHeader, kPayload };
  Status progress() override;
  std::unique_ptr<transport::wan::WanConnection> conn_;
  transport::wan::ResumeAcceptor* acceptor_ = nullptr;  // where the sender re-dials (healing)
  Status decodePayload(void* dst);
  std::unique_ptr<compress::Codec> lz4_, zstd_;  // decoders, made on first use (the sender chose)
  Stage stage_ = Stage::kIdle;
  uint64_t ticket_ = 0;  // of the header or payload being received
  WanHeader header_{};
  int target_ = -1;
  std::vector<char> wire_;  // a compressed payload, until decoded
};

}  // namespace xsite::plugin::net
