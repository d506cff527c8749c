target_sources(xsite_compress PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/lossy.cc)
