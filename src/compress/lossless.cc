// TEMPORARY (being written): the lossless codecs.
#include "compress/internal.h"
namespace xsite::compress {
std::unique_ptr<Codec> makeLosslessCodec(CodecId, const CodecOptions&) { return nullptr; }
}  // namespace xsite::compress
