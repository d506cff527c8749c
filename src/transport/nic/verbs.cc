// The verbs branch of NIC discovery: load libibverbs at run time (as NCCL does; no link-time
// dependency), list the devices and their ports, and copy what the driver says into records.
// Turning records into NicInfo is nic.cc's pure nicsFromRecords().
#include <dlfcn.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <type_traits>

#include "transport/nic/nic.h"
#include "transport/nic/sysfs.h"

#if __has_include(<infiniband/verbs.h>)
#include <infiniband/verbs.h>  // types and constants only; every function comes from dlsym
#define XSITE_HAVE_VERBS_H 1
#endif

namespace xsite::transport::nic {

#ifndef XSITE_HAVE_VERBS_H

VerbsScan scanVerbs(const std::string&) {
  VerbsScan scan;
  scan.note = "xsite was built without the libibverbs headers (rdma-core's libibverbs-dev)";
  return scan;
}

#else

namespace {

// The few entry points discovery needs, loaded once and kept for the life of the process (as NCCL
// does: unloading libibverbs with its providers is not safe). ibv_query_port is a macro in verbs.h
// over an inline function; the exported symbol (IBVERBS_1.1) takes the same struct, which we zero
// first, as the inline fallback does.
struct Verbs {
  void* handle = nullptr;
  ibv_device** (*getDeviceList)(int*) = nullptr;
  void (*freeDeviceList)(ibv_device**) = nullptr;
  const char* (*getDeviceName)(ibv_device*) = nullptr;
  __be64 (*getDeviceGuid)(ibv_device*) = nullptr;
  ibv_context* (*openDevice)(ibv_device*) = nullptr;
  int (*closeDevice)(ibv_context*) = nullptr;
  int (*queryDevice)(ibv_context*, ibv_device_attr*) = nullptr;
  int (*queryPort)(ibv_context*, uint8_t, ibv_port_attr*) = nullptr;

  std::string error;  // "" when loaded, else what is missing

  Verbs() { error = load(); }

 private:
  std::string load() {
    handle = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* why = dlerror();
      return std::string("libibverbs.so.1 not loadable: ") + (why ? why : "unknown");
    }
    std::string missing;
    auto sym = [&](auto& fn, const char* name) {
      void* p = dlvsym(handle, name, "IBVERBS_1.1");
      if (!p) p = dlsym(handle, name);
      if (!p) missing += std::string(missing.empty() ? "" : ", ") + name;
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)> >(p);
    };
    sym(getDeviceList, "ibv_get_device_list");
    sym(freeDeviceList, "ibv_free_device_list");
    sym(getDeviceName, "ibv_get_device_name");
    sym(getDeviceGuid, "ibv_get_device_guid");
    sym(openDevice, "ibv_open_device");
    sym(closeDevice, "ibv_close_device");
    sym(queryDevice, "ibv_query_device");
    sym(queryPort, "ibv_query_port");
    return missing.empty() ? "" : "libibverbs.so.1 lacks " + missing;
  }
};

// Sysfs facts of one device: PCI path, NUMA node, the first associated network interface.
void fillSysfs(VerbsDeviceRecord& r, const std::string& sysfsRoot) {
  r.devicePath = sysfs::realPath(sysfsRoot + "/class/infiniband/" + r.name + "/device");
  if (r.devicePath.empty()) return;  // a software device (rxe, siw) may have none
  const std::string numa = sysfs::line(r.devicePath + "/numa_node");
  if (!numa.empty()) r.numaNode = atoi(numa.c_str());
  const auto nets = sysfs::list(r.devicePath + "/net");
  if (!nets.empty()) r.netdev = nets.front();
}

}  // namespace

VerbsScan scanVerbs(const std::string& sysfsRoot) {
  VerbsScan scan;
  static const Verbs v;
  scan.note = v.error;
  if (!scan.note.empty()) return scan;

  int count = 0;
  errno = 0;
  ibv_device** list = v.getDeviceList(&count);
  if (!list) {
    const int err = errno;
    scan.note = std::string("ibv_get_device_list: ") + strerror(err);
    // rdma-core answers ENOSYS when the kernel has no RDMA subsystem at all
    if (sysfs::list(sysfsRoot + "/class/infiniband").empty())
      scan.note += " (no " + sysfsRoot + "/class/infiniband)";
    return scan;
  }
  std::string failures;
  for (int i = 0; i < count; ++i) {
    const char* name = v.getDeviceName(list[i]);
    ibv_context* ctx = v.openDevice(list[i]);
    if (!ctx) {
      failures += std::string(failures.empty() ? "" : "; ") + (name ? name : "?") +
                  ": ibv_open_device: " + strerror(errno);
      continue;
    }
    ibv_device_attr dev;
    memset(&dev, 0, sizeof(dev));
    if (v.queryDevice(ctx, &dev) != 0) {
      failures += std::string(failures.empty() ? "" : "; ") + (name ? name : "?") +
                  ": ibv_query_device failed";
      v.closeDevice(ctx);
      continue;
    }
    for (int port = 1; port <= dev.phys_port_cnt; ++port) {
      ibv_port_attr attr;
      memset(&attr, 0, sizeof(attr));
      if (v.queryPort(ctx, static_cast<uint8_t>(port), &attr) != 0) continue;
      VerbsDeviceRecord r;
      r.name = name ? name : "";
      r.guidBe = v.getDeviceGuid(list[i]);
      r.port = port;
      r.state = attr.state;
      r.activeWidth = attr.active_width;
      r.activeSpeed = attr.active_speed;
      r.linkLayer = attr.link_layer;
      fillSysfs(r, sysfsRoot);
      scan.records.push_back(std::move(r));
    }
    v.closeDevice(ctx);
  }
  v.freeDeviceList(list);
  if (scan.records.empty())
    scan.note =
        count == 0 ? "no devices" : std::to_string(count) + " devices, none usable: " + failures;
  return scan;
}

#endif

}  // namespace xsite::transport::nic
