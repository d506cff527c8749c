#!/usr/bin/env python3
"""Fails when a file includes a header from a layer it may not use (src/README.md).

Layers point down only: util <- {bootstrap, topo, compress} ; bootstrap <- transport ; {transport, topo, compress}
<- coll <- api ; the public headers (include/xsite) include only each other; bench and tools
use the public API (bench also the tests' reference model, tests/common; bench/transport, the transport-level benchmarks, the transport layer; bench/compress, the
codec microbenchmarks, the compress layer) (tools may also read util and topo for xsite-info, and
transport for its NIC discovery, xsite-info --nics). A header beside the including file is always fine.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
ALLOWED = {
    "src/util": {"util", "xsite"},
    "src/bootstrap": {"bootstrap", "util", "xsite"},
    "src/topo": {"topo", "util", "xsite"},
    "src/transport": {"transport", "bootstrap", "util", "xsite"},
    "src/compress": {"compress", "util", "xsite"},
    "src/coll": {"coll", "compress", "transport", "topo", "bootstrap", "util", "xsite"},
    "src/api": {"coll", "util", "xsite"},
    "include/xsite": {"xsite"},
    # bench: the public API, and the tests' model of inputs and results (tests/common/reference.h,
    # itself over the public API only).
    "bench": {"xsite", "common"},
    "bench/transport": {"transport", "bootstrap", "util", "xsite"},
    "bench/compress": {"compress", "util", "xsite"},
    # xsite-info: util, topo, and transport/nic (xsite-info --nics).
    "tools": {"xsite", "transport", "topo", "util"},
    # The NCCL plugin: adapters over the core (NCCL_ABI types live in plugin/abi only).
    "plugin": {"plugin", "transport", "topo", "util", "xsite"},
    # The net: lossless codecs on cross-site messages (XSITE_NET_CODEC); its sockets prove the
    # job's secret (bootstrap/auth.h).
    "plugin/net": {"plugin", "compress", "transport", "topo", "bootstrap", "util", "xsite"},
    # CollNet runs the library's collectives: a coll::Context over a Fabric met through a store.
    "plugin/collnet": {"plugin", "coll", "compress", "transport", "topo", "bootstrap", "util", "xsite"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def main():
    bad = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((ROOT / folder).rglob("*")):
            if path.suffix not in (".h", ".cc", ".cu", ".cuh", ".def"):
                continue
            rel = str(path.relative_to(ROOT))
            owner = max((f for f in ALLOWED if rel.startswith(f + "/")), key=len)
            if owner != folder:
                continue  # a deeper folder has its own rule
            for no, line in enumerate(path.read_text().splitlines(), 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                if (path.parent / m.group(1)).exists():
                    continue  # a header beside the file, inside its own folder
                top = m.group(1).split("/")[0]
                if top not in allowed:
                    bad.append(f"{path.relative_to(ROOT)}:{no}: includes \"{m.group(1)}\", "
                               f"but {folder} may only use {sorted(allowed)}")
    for b in bad:
        print(b)
    print(f"layering: {len(bad)} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
