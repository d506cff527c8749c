# The lossless codecs (lz4, zstd): byte-plane shuffle and zero elision (AVX2 / AVX-512 in their own
# files, picked at run time) and the system's liblz4 and libzstd, found through pkg-config.
find_package(PkgConfig REQUIRED)
pkg_check_modules(XSITE_LZ4 REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(XSITE_ZSTD REQUIRED IMPORTED_TARGET libzstd)
target_sources(xsite_compress PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/lossless.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/shuffle.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/shuffle_avx2.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/zero_map.cc)
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/shuffle_avx2.cc
  PROPERTIES COMPILE_OPTIONS "-mavx2")
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  # zero_map.cc calls these only where XSITE_COMPRESS_X86 is defined (lossy.cmake).
  target_sources(xsite_compress PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/zero_map_avx2.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/zero_map_avx512.cc)
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/zero_map_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mpopcnt")
  # -Wno-maybe-uninitialized: GCC 12 warns inside its own avx512fintrin.h (GCC bug 105593).
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/zero_map_avx512.cc
    PROPERTIES COMPILE_OPTIONS
    "-mavx512f;-mavx512bw;-mavx512vl;-mavx512vbmi2;-mpopcnt;-Wno-maybe-uninitialized")
endif()
target_link_libraries(xsite_compress PRIVATE PkgConfig::XSITE_LZ4 PkgConfig::XSITE_ZSTD)
