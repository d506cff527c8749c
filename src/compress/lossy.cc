// TEMPORARY (being written): the lossy codecs.
#include "compress/internal.h"
namespace xsite::compress {
std::unique_ptr<Codec> makeLossyCodec(CodecId, const CodecOptions&) { return nullptr; }
std::string_view codecIsa() noexcept { return "scalar"; }
}  // namespace xsite::compress
