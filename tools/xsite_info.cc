// xsite-info: what xsite sees in this environment (like ucx_info).
//   xsite-info        version and this rank's place as the variables describe it
//   xsite-info -c     every XSITE_* variable with its effective value, default and doc
//   xsite-info -a     also the launcher variables that are set
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "topo/env_record.h"
#include "util/params.h"
#include "xsite/error.h"
#include "xsite/version.h"

int main(int argc, char** argv) {
  bool config = false, all = false;
  for (int i = 1; i < argc; ++i) {
    if (!strcmp(argv[i], "-c")) config = true;
    else if (!strcmp(argv[i], "-a")) config = all = true;
    else {
      fprintf(stderr, "usage: xsite-info [-c] [-a]\n  -c  effective configuration\n  -a  also launcher variables\n");
      return 2;
    }
  }
  try {
    const auto& p = xsite::params::Params::global();
    if (config) {
      fputs(p.describe(all).c_str(), stdout);
      return 0;
    }
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    auto r = xsite::topo::recordFromParams(p, host);
    printf("xsite %s\n", XSITE_VERSION_STRING);
    printf("rank %d of %d (%s): site %d, domain '%s', local rank %d\n", r.rank, r.worldSize,
           r.source.c_str(), r.site, r.domain.c_str(), r.localRank);
    return 0;
  } catch (const xsite::Error& e) {
    fprintf(stderr, "xsite-info: %s\n", e.what());
    return 1;
  }
}
