# xcore_add_plugin(<target> SOURCES <files...> MANIFEST <plugin.yaml> [OUTPUT_DIR <dir>] [OUTPUT_NAME <name>])
#
# Builds a plugin as a MODULE library against the SDK only, with hidden visibility and -fno-gnu-unique
# (without it glibc can never unload the plugin and hot reload would keep serving the old code), and
# stages it as <OUTPUT_DIR>/<target>/ holding the binary and its manifest, ready to be loaded.
function(xcore_add_plugin target)
  cmake_parse_arguments(ARG "" "MANIFEST;OUTPUT_DIR;OUTPUT_NAME" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "xcore_add_plugin(${target}): SOURCES is required")
  endif()
  if(NOT ARG_MANIFEST)
    message(FATAL_ERROR "xcore_add_plugin(${target}): MANIFEST is required (plugin.yaml or plugin.json)")
  endif()
  if(NOT ARG_OUTPUT_DIR)
    if(DEFINED XCORE_PLUGIN_STAGING_DIR)
      set(ARG_OUTPUT_DIR ${XCORE_PLUGIN_STAGING_DIR})
    else()
      set(ARG_OUTPUT_DIR ${CMAKE_BINARY_DIR}/plugins)
    endif()
  endif()
  get_filename_component(manifest "${ARG_MANIFEST}" ABSOLUTE)
  # Staged as plugin.yaml or plugin.json whatever the source is called, so discovery finds it.
  get_filename_component(manifest_ext "${manifest}" LAST_EXT)
  if(manifest_ext STREQUAL ".json")
    set(manifest_name plugin.json)
  else()
    set(manifest_name plugin.yaml)
  endif()
  set(dir ${ARG_OUTPUT_DIR}/${target})

  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE xcore::sdk)
  set_target_properties(${target} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${dir})
  if(ARG_OUTPUT_NAME)
    set_target_properties(${target} PROPERTIES OUTPUT_NAME ${ARG_OUTPUT_NAME})
  endif()
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-gnu-unique>)
  endif()
  # A plugin must resolve everything at link time: a missing symbol fails the build, not the load.
  target_link_options(${target} PRIVATE -Wl,--no-undefined)
  # Copied at configure time, which CMake repeats whenever the manifest changes: editing only the
  # manifest and rebuilding stages the new one.
  configure_file(${manifest} ${dir}/${manifest_name} COPYONLY)
  set_property(TARGET ${target} APPEND PROPERTY XCORE_PLUGIN_DIR ${dir})
endfunction()
