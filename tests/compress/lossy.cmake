# The lossy codecs: behaviour, every ISA against the scalar reference, decode's checks, accuracy.
xsite_test(compress_lossy_test SOURCES lossy_test.cc DEPS xsite_compress LABEL unit)
xsite_test(compress_lossy_decode_test SOURCES lossy_decode_test.cc DEPS xsite_compress LABEL unit)
xsite_test(compress_accuracy_test SOURCES accuracy_test.cc DEPS xsite_compress LABEL unit)
target_compile_options(compress_lossy_test PRIVATE -ffp-contract=off)
# The CUDA twins against the host codecs, byte for byte: needs a GPU, so label gpu
# (`ctest -LE gpu` leaves it out; without a device it skips itself).
if(TARGET xsite_compress_cuda)
  xsite_test(compress_lossy_cuda_test SOURCES lossy_cuda_test.cc DEPS xsite_compress_cuda LABEL gpu)
endif()
