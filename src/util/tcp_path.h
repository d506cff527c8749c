// What the kernel measures of a TCP connection's path (TCP_INFO): the inputs of WAN links that
// size their windows from the path instead of trusting the configured rate and latency.
#pragma once

#include <cstdint>

namespace xsite {

struct TcpPathSample {
  double minRttUs = 0;          // smallest RTT seen (tcpi_min_rtt)
  double rttUs = 0;             // smoothed RTT (tcpi_rtt)
  double deliveryBytesPerS = 0; // latest delivery-rate sample (tcpi_delivery_rate)
  uint64_t cwndBytes = 0;       // congestion window x MSS
  uint64_t sndbufLimitedUs = 0; // time the send buffer limited sending, cumulative
  uint64_t rwndLimitedUs = 0;   // time the peer's receive window limited sending, cumulative
  uint64_t busyUs = 0;          // time with data in flight, cumulative
  uint32_t rcvSpaceBytes = 0;   // bytes the receiver took in one of its RTTs (tcpi_rcv_space)
  int sndbufBytes = 0;          // SO_SNDBUF / SO_RCVBUF as the kernel holds them (twice what
  int rcvbufBytes = 0;          // was asked: the kernel doubles a request for its bookkeeping)
};

// False where the socket is not TCP or the kernel predates these fields (4.10).
bool sampleTcpPath(int fd, TcpPathSample& out) noexcept;

}  // namespace xsite
