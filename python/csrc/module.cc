// xsite._C: the process group and its options, for the xsite Python package (python/xsite).
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "process_group.h"

namespace py = pybind11;
using xsite::torch_backend::CallOptions;
using xsite::torch_backend::ProcessGroupXsite;

namespace {

template <typename E>
E parseEnum(const std::string& name, const char* what, std::initializer_list<std::pair<const char*, E>> all) {
  std::string names;
  for (const auto& [n, v] : all) {
    if (name == n) return v;
    names += (names.empty() ? "" : ", ") + std::string(n);
  }
  throw std::invalid_argument(std::string("xsite: ") + what + " '" + name + "' is not one of " + names);
}

xsite::Algorithm algorithmOf(const std::string& s) {
  using A = xsite::Algorithm;
  return parseEnum<A>(s, "algorithm", {{"auto", A::kAuto}, {"ring", A::kRing}, {"hier", A::kHierarchical},
                                       {"latency", A::kLatency}});
}

xsite::Codec codecOf(const std::string& s) {
  using C = xsite::Codec;
  return parseEnum<C>(s, "codec", {{"none", C::kNone}, {"lz4", C::kLz4}, {"zstd", C::kZstd}, {"bf16", C::kBf16},
                                   {"fp16", C::kFp16}, {"int8", C::kInt8}, {"fp8", C::kFp8}, {"int4", C::kInt4}});
}

xsite::Config configOf(const std::optional<std::string>& algorithm, const std::optional<std::string>& codec,
                       std::optional<bool> errorFeedback) {
  xsite::Config c;
  if (algorithm) c.algorithm = algorithmOf(*algorithm);
  if (codec) c.codec = codecOf(*codec);
  c.errorFeedback = errorFeedback;
  return c;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "xsite's torch.distributed process group (import xsite registers the backend)";
  py::module::import("torch.distributed");  // torch's ProcessGroup, Store and Work types
  py::class_<ProcessGroupXsite, c10d::ProcessGroup, c10::intrusive_ptr<ProcessGroupXsite>>(
      m, "ProcessGroupXsite")
      .def(py::init([](const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                       std::chrono::milliseconds timeout, std::optional<std::string> algorithm,
                       std::optional<std::string> codec, std::optional<bool> errorFeedback) {
             return c10::make_intrusive<ProcessGroupXsite>(store, rank, size, timeout,
                                                           configOf(algorithm, codec, errorFeedback));
           }),
           py::arg("store"), py::arg("rank"), py::arg("size"), py::arg("timeout"),
           py::arg("algorithm") = py::none(), py::arg("codec") = py::none(),
           py::arg("error_feedback") = py::none(), py::call_guard<py::gil_scoped_release>())
      .def(
          "all_reduce_with",
          [](ProcessGroupXsite& pg, at::Tensor& tensor, c10d::ReduceOp op, std::optional<std::string> algorithm,
             std::optional<std::string> codec, std::optional<bool> errorFeedback, const std::string& key) {
            CallOptions o;
            if (algorithm) o.allReduce.algorithm = algorithmOf(*algorithm);
            if (codec) o.allReduce.codec = codecOf(*codec);
            o.allReduce.errorFeedback = errorFeedback;
            o.allReduce.errorFeedbackKey = key;
            return pg.allreduceWith(tensor, op, o);
          },
          py::arg("tensor"), py::arg("op"), py::arg("algorithm") = py::none(), py::arg("codec") = py::none(),
          py::arg("error_feedback") = py::none(), py::arg("key") = "",
          py::call_guard<py::gil_scoped_release>())
      .def("abort", &ProcessGroupXsite::abort)
      .def(
          "wan_stats",
          [](ProcessGroupXsite& pg) {
            xsite::WanStats s;
            {
              py::gil_scoped_release nogil;  // waits for the group's worker
              s = pg.wanStats();
            }
            return py::make_tuple(s.rawBytes, s.wireBytes);
          },
          "(raw bytes, wire bytes) this rank's cross-site stages sent")
      .def("describe_topology", &ProcessGroupXsite::describeTopology,
           py::call_guard<py::gil_scoped_release>());
  m.attr("__version__") = XSITE_VERSION_STRING;
}
