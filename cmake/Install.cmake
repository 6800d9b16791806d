# cmake --install: the programs; the units with their sysusers and tmpfiles
# snippets; the example configuration; and, for devices built elsewhere,
# libioreq-device.so.1 with its headers, pkg-config file and wire contract.
# debian/ splits this into the packages (README.md, "Packages").
include(GNUInstallDirs)

install(TARGETS ioreq-brokerd ioreqctl ${IOREQ_DEVICE_PROGRAMS} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ioreq-device-shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY clients/include/ioreq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
configure_file(cmake/ioreq-device.pc.in ${CMAKE_BINARY_DIR}/ioreq-device.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/ioreq-device.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
# The contracts, for programs in other languages: a device's, and ioreqctl's.
install(FILES proto/ioreq.proto DESTINATION ${CMAKE_INSTALL_DATADIR}/ioreq-device)
install(FILES proto/control.proto DESTINATION ${CMAKE_INSTALL_DATADIR}/ioreq-broker)

# Relative to the prefix: /usr/lib/systemd/system, where systemd looks.
set(IOREQ_SYSTEMD_DIR lib/systemd/system CACHE STRING "Where the units go, relative to the prefix")
install(FILES deploy/ioreq-broker.service deploy/ioreq-broker.socket DESTINATION ${IOREQ_SYSTEMD_DIR})
install(FILES deploy/ioreq-broker.sysusers DESTINATION lib/sysusers.d RENAME ioreq-broker.conf)
install(FILES deploy/ioreq-broker.tmpfiles DESTINATION lib/tmpfiles.d RENAME ioreq-broker.conf)
install(FILES deploy/broker.yaml DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/ioreq-broker)
install(DIRECTORY examples/sim DESTINATION ${CMAKE_INSTALL_DATADIR}/ioreq-broker/examples)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
