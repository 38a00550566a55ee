# Installs libxcore, its headers, the SDK and the CMake package (find_package(xcore) + xcore_add_plugin).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(TARGETS xcore xcore_sdk EXPORT xcoreTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/xcore ${PROJECT_SOURCE_DIR}/sdk/include/xcore
  ${PROJECT_BINARY_DIR}/generated/include/xcore
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(XCORE_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/xcore)
install(EXPORT xcoreTargets NAMESPACE xcore:: DESTINATION ${XCORE_CMAKE_DIR})
export(EXPORT xcoreTargets NAMESPACE xcore:: FILE ${PROJECT_BINARY_DIR}/xcoreTargets.cmake)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/xcoreConfig.cmake.in
  ${PROJECT_BINARY_DIR}/xcoreConfig.cmake INSTALL_DESTINATION ${XCORE_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/xcoreConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/xcoreConfig.cmake
  ${PROJECT_BINARY_DIR}/xcoreConfigVersion.cmake
  ${PROJECT_SOURCE_DIR}/cmake/XcoreAddPlugin.cmake
  DESTINATION ${XCORE_CMAKE_DIR})

# pkg-config, relocatable (paths relative to the .pc file). Boost.JSON is in xcore's API, so always on the
# link line; a static libxcore needs its private dependencies there too, a shared one carries them.
if(BUILD_SHARED_LIBS)
  set(XCORE_PC_LIBS "-lboost_json -lpthread")
  set(XCORE_PC_LIBS_PRIVATE "-lfmt -lyaml-cpp -lcpp-httplib -lssl -lcrypto -ldl")
else()
  set(XCORE_PC_LIBS "-lboost_json -lpthread -lfmt -lyaml-cpp -lcpp-httplib -lssl -lcrypto -ldl")
  set(XCORE_PC_LIBS_PRIVATE "")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/xcore.pc.in ${PROJECT_BINARY_DIR}/xcore.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/xcore.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
