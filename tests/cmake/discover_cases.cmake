# Run after a test binary is built: lists its doctest cases and writes one CTest test per case, named
# "<binary>: <case>", so that ctest names the case that failed. Labels, timeout and fixtures come from
# the binary's registration; the cases of one binary share a resource lock, so they run one at a time
# (as the whole binary did) while different binaries still run in parallel.
# Inputs: TEST_BINARY, TEST_NAME, TEST_LABELS, TEST_TIMEOUT, TEST_FIXTURES, OUTPUT.
execute_process(COMMAND "${TEST_BINARY}" --list-test-cases --no-version=true
                OUTPUT_VARIABLE listing RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${TEST_BINARY} --list-test-cases failed (${rc}): ${listing}")
endif()
string(REPLACE ";" "\\;" listing "${listing}")
string(REPLACE "\n" ";" lines "${listing}")
string(REPLACE "\\;" ";" labels "${TEST_LABELS}")
set(script "")
set(count 0)
foreach(line IN LISTS lines)
  if(line STREQUAL "" OR line MATCHES "^\\[doctest\\]" OR line MATCHES "^=+$")
    continue()
  endif()
  # doctest's filter splits on commas; an escaped comma is part of the name.
  string(REPLACE "," "\\," filter "${line}")
  string(APPEND script "add_test([==[${TEST_NAME}: ${line}]==] [==[${TEST_BINARY}]==] [==[--test-case=${filter}]==])\n")
  string(APPEND script "set_tests_properties([==[${TEST_NAME}: ${line}]==] PROPERTIES LABELS \"${labels}\" TIMEOUT ${TEST_TIMEOUT} RESOURCE_LOCK ${TEST_NAME}"
         # exactly this one case ran and passed (a filter that matched nothing would exit 0 too)
         " PASS_REGULAR_EXPRESSION [==[test cases: +1 [|] +1 passed [|] +0 failed]==]")
  if(TEST_FIXTURES)
    string(APPEND script " FIXTURES_REQUIRED ${TEST_FIXTURES}")
  endif()
  string(APPEND script ")\n")
  math(EXPR count "${count} + 1")
endforeach()
if(count EQUAL 0)
  message(FATAL_ERROR "${TEST_BINARY} lists no test cases")
endif()
file(WRITE "${OUTPUT}" "${script}")
