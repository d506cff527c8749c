# Shared by the set-up scripts: install what is missing (idempotent), configure and build.
# Source it; do not run it.

XSITE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XSITE_BUILD="${XSITE_BUILD:-$XSITE_ROOT/build}"

# ensure_packages PKG...: apt-get installs the Debian packages that are not installed yet.
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "xsite: installing ${missing[*]}" >&2
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# The packages every build needs.
ensure_build_deps() {
  ensure_packages cmake g++ make libgtest-dev libbenchmark-dev liblz4-dev libzstd-dev libucx-dev libibverbs-dev libssl-dev pkg-config python3 iproute2 procps iperf3 iputils-ping util-linux ethtool \
    python3-dev python3-torch libtorch-dev pybind11-dev  # the PyTorch backend (python/)
}

# build [TARGET...]: configure once, then build (everything by default).
build() {
  if [ ! -f "$XSITE_BUILD/CMakeCache.txt" ]; then
    cmake -S "$XSITE_ROOT" -B "$XSITE_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  fi
  local targets=()
  for t in "$@"; do targets+=(--target "$t"); done
  cmake --build "$XSITE_BUILD" -j "$(nproc)" "${targets[@]}"
}
