// Cross-site comms of the net plugin: the comm's sockets (XSITE_WAN_STREAMS of them, prepared
// like Fabric's WAN links) under one transport::wan::WanConnection, which a TransportSendComm or
// TransportRecvComm (comm.h) drives.
//
// Send: a request completes once its message is staged (copied into the connection's window of
// XSITE_WAN_WINDOW bytes, eight bandwidth-delay products by default), so NCCL reuses its slot
// while the bytes are still on their way and its 8 slots no longer bound the WAN. One
// process-wide WanProxy thread keeps staged bytes flowing into the sockets between NCCL's test()
// calls; it runs while any WAN comm is open. Closing a send comm first moves what is staged into
// the sockets and waits for the receiver's acknowledgements (a dead peer ends the wait early).
//
// Healing (XSITE_WAN_RECONNECT_TIMEOUT > 0, as in the library: docs/reliability.md): a stream
// that is reset, times out or fails to write is dialed again by the sender, and each side resends
// what the other lacks, so NCCL's requests complete as if nothing happened. NCCL closes a listen
// comm once it is connected, so the receiving process keeps a resume listener per address that
// listen() used (its port travels in the handle) for its whole life; the re-dial names the link
// by the handle's nonce and proves the job's secret like any connection. The proxy thread heals
// both ends and polls the resume listeners.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "plugin/net/comm.h"

namespace xsite::plugin::net {

// The resume listener of `ip` (made on first use, kept for the process's life): its port, in
// network byte order, for the handle. Throws Error(kSystem) when it cannot listen.
uint16_t resumePort(const std::string& ip, const LinkSettings& settings);

// A WAN comm's connection, and its place in the proxy (and the resume listener) while it lives.
struct WanComm {
  std::unique_ptr<transport::Connection> conn;
  std::unique_ptr<ConnectionLease> lease;
};
// The sender's end: `resume` is the receiver's resume listener (port 0: no healing), `key` the
// handle's nonce. The lease's release first delivers what is staged (bounded).
WanComm connectWan(std::vector<Fd> streams, const std::string& label, const LinkSettings& settings,
                   const SockAddr& resume, uint64_t key);
// The receiver's end, accepted on `ip` (its resume listener's address).
WanComm acceptWan(std::vector<Fd> streams, const std::string& label, const LinkSettings& settings,
                  const std::string& ip, uint64_t key);

}  // namespace xsite::plugin::net
