#include "util/tcp_path.h"

// The kernel's struct tcp_info (linux/tcp.h): glibc's netinet/tcp.h stops before the fields used
// here, and the two headers do not mix, so this file alone includes the kernel's.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace xsite {

bool sampleTcpPath(int fd, TcpPathSample& out) noexcept {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return false;
  if (len < offsetof(tcp_info, tcpi_sndbuf_limited) + sizeof(ti.tcpi_sndbuf_limited)) return false;
  out.minRttUs = ti.tcpi_min_rtt;
  out.rttUs = ti.tcpi_rtt;
  out.deliveryBytesPerS = static_cast<double>(ti.tcpi_delivery_rate);
  out.cwndBytes = static_cast<uint64_t>(ti.tcpi_snd_cwnd) * ti.tcpi_snd_mss;
  out.sndbufLimitedUs = ti.tcpi_sndbuf_limited;
  out.rwndLimitedUs = ti.tcpi_rwnd_limited;
  out.busyUs = ti.tcpi_busy_time;
  out.rcvSpaceBytes = ti.tcpi_rcv_space;
  socklen_t il = sizeof(int);
  ::getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &out.sndbufBytes, &il);
  il = sizeof(int);
  ::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &out.rcvbufBytes, &il);
  return true;
}

}  // namespace xsite
