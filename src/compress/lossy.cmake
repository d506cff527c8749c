# The lossy codecs (bf16, fp16, int8, fp8, int4): the codecs, the scalar reference kernels and,
# on x86-64, the AVX2 and AVX-512 kernels (their own flags; picked at run time, kernels.h). The
# whole target builds with -ffp-contract=off (CMakeLists.txt): every path rounds the same way.
target_sources(xsite_compress PRIVATE
  ${CMAKE_CURRENT_SOURCE_DIR}/lossy.cc
  ${CMAKE_CURRENT_SOURCE_DIR}/kernels_scalar.cc)
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
  target_sources(xsite_compress PRIVATE
    ${CMAKE_CURRENT_SOURCE_DIR}/kernels_avx2.cc
    ${CMAKE_CURRENT_SOURCE_DIR}/kernels_avx512.cc)
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/kernels_avx2.cc
    PROPERTIES COMPILE_OPTIONS "-mavx2;-mf16c")
  # -Wno-maybe-uninitialized: GCC 12 warns inside its own avx512fintrin.h (GCC bug 105593).
  set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/kernels_avx512.cc
    PROPERTIES COMPILE_OPTIONS "-mavx512f;-mavx512bw;-mavx512vl;-mf16c;-Wno-maybe-uninitialized")
  target_compile_definitions(xsite_compress PRIVATE XSITE_COMPRESS_X86=1)
endif()

# The CUDA twins (cuda/codec_kernels.cu): device encode/decode that write the host codecs'
# bytes. Built when nvcc is found, unless -DXSITE_WITH_CUDA=OFF.
option(XSITE_WITH_CUDA "Build the CUDA codec kernels when nvcc is found" ON)
set(XSITE_COMPRESS_CUDA OFF)
if(XSITE_WITH_CUDA)
  # nvcc is rarely on PATH: look where the toolkit installs it too.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(XSITE_NVCC nvcc HINTS ENV CUDA_HOME ENV CUDA_PATH /usr/local/cuda PATH_SUFFIXES bin)
    if(XSITE_NVCC)
      set(CMAKE_CUDA_COMPILER ${XSITE_NVCC})
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      set(CMAKE_CUDA_ARCHITECTURES 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(XSITE_COMPRESS_CUDA ON)
    add_library(xsite_compress_cuda STATIC ${CMAKE_CURRENT_SOURCE_DIR}/cuda/codec_kernels.cu)
    target_link_libraries(xsite_compress_cuda PUBLIC xsite_compress CUDA::cudart)
    set_target_properties(xsite_compress_cuda PROPERTIES CUDA_STANDARD 17
                          CUDA_STANDARD_REQUIRED ON POSITION_INDEPENDENT_CODE ON)
    # Exact IEEE operations, as on the host: no fused multiply-add, no flush to zero.
    target_compile_options(xsite_compress_cuda PRIVATE
      $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -ftz=false -prec-div=true -prec-sqrt=true
                                 -Xcompiler=-ffp-contract=off -Xcompiler=-Wall,-Wextra>)
  else()
    message(STATUS "xsite: no nvcc found; the CUDA codec kernels are not built")
  endif()
endif()
