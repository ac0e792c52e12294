# cdrmix_add_plugin(NAME <name> KIND <block|router|backend|data> SOURCES <files...>
#                   [OUTPUT_DIR <dir>] [NO_INSTALL])
#
# Builds libcdrmix-<kind>-<name>.so: a MODULE library that links the SDK, hides
# every symbol except the entry point (version script), and refuses undefined
# symbols at link time (-z defs) instead of at dlopen time. In-tree plugins land
# in CDRMIX_PLUGIN_OUTPUT_DIR (build/plugins); out-of-tree ones in their own build dir.
set(_CDRMIX_PLUGIN_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/plugin.version")

function(cdrmix_add_plugin)
  cmake_parse_arguments(ARG "NO_INSTALL" "NAME;KIND;OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_NAME OR NOT ARG_KIND OR NOT ARG_SOURCES)
    message(FATAL_ERROR "cdrmix_add_plugin: NAME, KIND and SOURCES are required")
  endif()
  set(target cdrmix-${ARG_KIND}-${ARG_NAME})
  add_library(${target} MODULE ${ARG_SOURCES})
  set_property(GLOBAL APPEND PROPERTY CDRMIX_PLUGIN_TARGETS ${target})
  if(TARGET cdrmix::sdk)
    target_link_libraries(${target} PRIVATE cdrmix::sdk)
  else()
    target_link_libraries(${target} PRIVATE cdrmix_sdk)
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    CXX_STANDARD 17
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    INSTALL_RPATH "$ORIGIN/../..") # lib/cdrmix/plugins -> lib, where libcdrmix lives
  target_link_options(${target} PRIVATE
    "-Wl,--version-script=${_CDRMIX_PLUGIN_VERSION_SCRIPT}" "-Wl,-z,defs")
  set(out_dir "${ARG_OUTPUT_DIR}")
  if(NOT out_dir AND DEFINED CDRMIX_PLUGIN_OUTPUT_DIR)
    set(out_dir "${CDRMIX_PLUGIN_OUTPUT_DIR}")
  endif()
  if(out_dir)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${out_dir}")
  endif()
  # In-tree plugins reuse one precompiled LibTorch header (plugins/CMakeLists.txt).
  if(CDRMIX_PLUGIN_PCH)
    target_precompile_headers(${target} REUSE_FROM ${CDRMIX_PLUGIN_PCH})
  endif()
  if(DEFINED CDRMIX_INSTALL_PLUGIN_DIR AND NOT ARG_NO_INSTALL)
    install(TARGETS ${target} LIBRARY DESTINATION ${CDRMIX_INSTALL_PLUGIN_DIR})
  endif()
endfunction()
