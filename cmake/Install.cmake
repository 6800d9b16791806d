# cmake --install: programs, units, the example configuration, the device
# library with its header and pkg-config file; CPack: a .deb.
include(GNUInstallDirs)

install(TARGETS ioreq-brokerd ioreqctl ${IOREQ_DEVICE_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ioreq-device ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES clients/include/ioreq/device.h clients/include/ioreq/virtq.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ioreq)
configure_file(cmake/ioreq-device.pc.in ${CMAKE_BINARY_DIR}/ioreq-device.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/ioreq-device.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# systemd looks in /lib on Debian 12, whatever the prefix.
set(IOREQ_SYSTEMD_DIR lib/systemd/system CACHE STRING "Where the units go, relative to the prefix")
install(FILES deploy/ioreq-broker.service deploy/ioreq-broker.socket DESTINATION ${IOREQ_SYSTEMD_DIR})
install(FILES deploy/ioreq-broker.sysusers DESTINATION lib/sysusers.d RENAME ioreq-broker.conf)
install(FILES deploy/broker.yaml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/ioreq-broker)
install(DIRECTORY examples/sim DESTINATION ${CMAKE_INSTALL_DATADIR}/ioreq-broker/examples)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ioreq-broker)
set(CPACK_PACKAGE_VENDOR "ioreq-broker")
set(CPACK_PACKAGE_CONTACT "ioreq-broker maintainers <maintainers@ioreq-broker.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "I/O-request broker: every emulated VM device in its own sandboxed process")
set(CPACK_PACKAGE_INSTALL_DIRECTORY /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
# The runtime packages, found by dpkg-shlibdeps from what the programs link.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/deploy/debian/postinst ${CMAKE_SOURCE_DIR}/deploy/debian/conffiles)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
