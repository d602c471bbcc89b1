# stowage_add_stage(NAME SOURCES src...)
# Builds a loadable stage library NAME.so: a MODULE that links the SDK, hides
# every symbol but the ones STOWAGE_STAGE exports, and lands in the plugin
# folder the server searches.
#
# The same function serves this tree and outside projects: the installed
# package (find_package(stowage)) includes this file too. Inside this tree the
# library goes to the build's lib/stowage/plugins/; in an outside project it
# goes to STOWAGE_PLUGIN_OUTPUT_DIR when the project sets it, otherwise to the
# project's own build folder (CMAKE_CURRENT_BINARY_DIR).
function(stowage_add_stage name)
  cmake_parse_arguments(ARG "" "" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "stowage_add_stage(${name}): give the stage's sources, e.g. SOURCES src/plugin.cc")
  endif()
  if(NOT TARGET stowage::sdk)
    message(FATAL_ERROR "stowage_add_stage(${name}): stowage::sdk is not defined; call "
                        "find_package(stowage 2 CONFIG REQUIRED) first")
  endif()
  if(DEFINED STOWAGE_PLUGIN_OUTPUT_DIR)
    set(output_dir ${STOWAGE_PLUGIN_OUTPUT_DIR})
  else()
    set(output_dir ${CMAKE_CURRENT_BINARY_DIR})
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE stowage::sdk)
  target_compile_features(${name} PRIVATE cxx_std_20)
  set_target_properties(${name} PROPERTIES
    PREFIX ""
    OUTPUT_NAME ${name}
    POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${output_dir})
  # A stage must resolve all its symbols at link time, not when loaded.
  target_link_options(${name} PRIVATE -Wl,--no-undefined)
endfunction()
