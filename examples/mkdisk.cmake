# The demo's virtio-blk image: cmake -DOUT=FILE -DSECTORS=N -P mkdisk.cmake
#
# Every 512-byte sector holds its own number, one 32-byte line repeated 16
# times ("demo disk sector 000042 .......\n"), the pattern the demo guest
# checks (examples/guest/demo.c, disk_pattern). Written to a temporary file
# and renamed, so a broker never opens half an image.
if(NOT OUT OR NOT SECTORS)
  message(FATAL_ERROR "usage: cmake -DOUT=FILE -DSECTORS=N -P mkdisk.cmake")
endif()
set(image "")
math(EXPR last "${SECTORS} - 1")
foreach(s RANGE ${last})
  string(LENGTH "${s}" digits)
  math(EXPR zeros "6 - ${digits}")
  string(REPEAT "0" ${zeros} pad)
  string(REPEAT "demo disk sector ${pad}${s} .......\n" 16 sector)
  string(APPEND image "${sector}")
endforeach()
file(WRITE "${OUT}.tmp" "${image}")
file(RENAME "${OUT}.tmp" "${OUT}")
