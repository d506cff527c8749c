// What the kernel measures of a TCP connection's path (TCP_INFO), for WAN links that size their
// windows from the path instead of trusting the configured rate and latency.
#pragma once

namespace xsite {

// The smallest RTT the kernel has seen on the connection, microseconds (tcpi_min_rtt); 0 where
// the socket is not TCP, has no sample yet, or the kernel predates the field (4.10).
double tcpMinRttUs(int fd) noexcept;

}  // namespace xsite
