#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: all tests on the release build, then the unit and
# integration tests again under AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
#   XCORE_SKIP_SANITIZERS=1 scripts/test.sh   skips the sanitizer passes
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/build.sh default
ctest --preset default

if [[ "${XCORE_SKIP_SANITIZERS:-0}" != 1 ]]; then
  bash scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --preset asan
  bash scripts/build.sh tsan
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --preset tsan
fi
