#include "util/tcp_path.h"

// The kernel's struct tcp_info (linux/tcp.h): glibc's netinet/tcp.h stops before tcpi_min_rtt,
// and the two headers do not mix, so this file alone includes the kernel's.
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace xsite {

double tcpMinRttUs(int fd) noexcept {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
  if (len < offsetof(tcp_info, tcpi_min_rtt) + sizeof(ti.tcpi_min_rtt)) return 0;
  return ti.tcpi_min_rtt;
}

}  // namespace xsite
