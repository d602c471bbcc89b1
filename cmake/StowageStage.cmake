# stowage_add_stage(NAME SOURCES src...)
# Builds a loadable stage library NAME.so: a MODULE that links the SDK, hides
# every symbol but the ones STOWAGE_STAGE exports, and lands in the plugin
# folder the server searches.
function(stowage_add_stage name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE stowage::sdk)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${STOWAGE_PLUGIN_OUTPUT_DIR})
  # A stage must resolve all its symbols at link time, not when loaded.
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
endfunction()
