# Runs a seqlock test built with a fence missing (TEST_BINARY) and passes only when
# ThreadSanitizer stops it with a data race on the plain write the fence should have ordered:
# exit status 66 (TSan's, set here), then one report in which the reader thread reads, and the
# main thread (the writer) had written, the same 8 bytes, both in seqlock_test.cpp. Anything else
# (a clean run, a crash, a timeout, another race) fails.
if(NOT DEFINED TEST_BINARY)
  message(FATAL_ERROR "expect_tsan_race.cmake: pass -DTEST_BINARY=<path>")
endif()
set(ENV{TSAN_OPTIONS} "halt_on_error=1 exitcode=66")
execute_process(
  COMMAND ${TEST_BINARY} --gtest_filter=Seqlock.ReaderThatLoadsAnOpenWritesPayloadSeesTheWriteBegun
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 240)

set(read_addr "")
set(write_addr "")
set(frame0 ":\n +#0 [^\n]*seqlock_test\\.cpp:[0-9]+")
if(err MATCHES "Read of size 8 at (0x[0-9a-f]+) by thread T[0-9]+${frame0}")
  set(read_addr "${CMAKE_MATCH_1}")
  set(read_line "${CMAKE_MATCH_0}")
endif()
if(err MATCHES "Previous write of size 8 at (0x[0-9a-f]+) by main thread${frame0}")
  set(write_addr "${CMAKE_MATCH_1}")
  set(write_line "${CMAKE_MATCH_0}")
endif()
string(REGEX MATCH "SUMMARY: ThreadSanitizer: data race [^\n]*" summary "${err}")
if(NOT rc STREQUAL "66" OR summary STREQUAL "" OR read_addr STREQUAL "" OR
   NOT read_addr STREQUAL write_addr)
  message(FATAL_ERROR "expected ThreadSanitizer to report a data race between the writer's "
                      "marker write and the reader's read of it (exit status 66); got exit "
                      "status '${rc}':\n${out}\n${err}")
endif()
string(REPLACE "\n" " " read_line "${read_line}")
string(REPLACE "\n" " " write_line "${write_line}")
message(STATUS "as expected, ${summary}\n  ${read_line}\n  ${write_line}")
