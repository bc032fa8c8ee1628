# Post-build check, run as `cmake -DMODULE=<_C.so> -DREADELF=<readelf> -P check_shared_libstdcxx.cmake`:
# the module must load libstdc++ as a shared library (a NEEDED entry), the one copy that torch
# and the Python process use. A module with its own static copy has its own locale facets, and
# std::ostream's integer formatting in it fails: error messages lose their numbers (seen here
# with -static-libstdc++) or the process segfaults (seen on the GPU machine, GCC 13.3).
execute_process(
  COMMAND "${READELF}" -d "${MODULE}"
  OUTPUT_VARIABLE _dynamic
  RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(WARNING "fluxkern: could not read the dynamic section of ${MODULE} with ${READELF}; "
                  "the shared-libstdc++ check was skipped")
  return()
endif()
if(NOT _dynamic MATCHES "NEEDED[^\n]*libstdc\\+\\+\\.so")
  message(FATAL_ERROR
    "fluxkern: ${MODULE} carries a static copy of libstdc++ (no NEEDED libstdc++.so entry). Its "
    "integer formatting would break (error messages without their numbers, or a segfault). The "
    "linker took libstdc++.a: drop -static-libstdc++ from the link flags, or give the compiler "
    "a shared libstdc++ (its -print-file-name=libstdc++.so must name an existing file).")
endif()
