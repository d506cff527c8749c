xsite_test(compress_codec_test SOURCES codec_test.cc DEPS xsite_compress LABEL unit)
xsite_test(compress_lossless_test SOURCES lossless_test.cc DEPS xsite_compress LABEL unit)
