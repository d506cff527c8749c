# The lossless codecs (lz4, zstd): byte-plane shuffle (AVX2 in its own file, picked at run time)
# and the system's liblz4 and libzstd, found through pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(XSITE_LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(XSITE_ZSTD REQUIRED IMPORTED_TARGET libzstd)
target_sources(xsite_compress PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/lossless.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/shuffle.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/shuffle_avx2.cc)
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/shuffle_avx2.cc
  PROPERTIES COMPILE_OPTIONS "-mavx2")
target_link_libraries(xsite_compress PRIVATE PkgConfig::XSITE_LZ4 PkgConfig::XSITE_ZSTD)
