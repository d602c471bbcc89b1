# cmake -DCOMPILER=... -DSOURCE=... -DINCLUDE=... -DEXPECT=... -P expect_compile_error.cmake
#
# Passes when compiling SOURCE fails with exactly one error, and that error's
# text holds EXPECT: what a stage author sees is one plain message, not a
# template backtrace.
execute_process(
  COMMAND ${COMPILER} -std=c++20 -fsyntax-only -I${INCLUDE} ${SOURCE}
  RESULT_VARIABLE result
  OUTPUT_VARIABLE output
  ERROR_VARIABLE output)
if(result EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not: STOWAGE_STAGE accepted a wrong class")
endif()
string(FIND "${output}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "compiling ${SOURCE} failed without the message '${EXPECT}'; the compiler said:\n${output}")
endif()
string(REGEX MATCHALL "error:" errors "${output}")
list(LENGTH errors count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "compiling ${SOURCE} gave ${count} errors where one plain message was expected; the compiler said:\n${output}")
endif()
message(STATUS "one error, as expected: ${EXPECT}")
