include(GoogleTest)

# stowage_add_test(NAME SOURCES src... [LIBS lib...])
# One GoogleTest binary, run by ctest as one test. Tests that need Redis or
# PostgreSQL read STOWAGE_TEST_REDIS_URL / STOWAGE_TEST_DATABASE_URL, which
# scripts/test sets after starting throwaway servers.
function(stowage_add_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${name} COMMAND ${name} --gtest_color=no)
  set_tests_properties(${name} PROPERTIES TIMEOUT 300)
endfunction()
