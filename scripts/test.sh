#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: all tests on the release build (the sandbox tests
# also as an unprivileged user when run as root), then the unit, integration and sandbox tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer, and under ThreadSanitizer.
#   XCORE_SKIP_SANITIZERS=1 scripts/test.sh   skips the sanitizer passes
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

bash scripts/build.sh default
ctest --preset default

# The sandbox again as an unprivileged user: the other privilege path of the launcher.
if [[ $(id -u) -eq 0 ]] && command -v setpriv >/dev/null; then
  unprivileged=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  if "${unprivileged[@]}" test -x build/tests/test_sandbox; then
    echo "sandbox tests as uid 65534:"
    "${unprivileged[@]}" build/tests/test_sandbox
  else
    echo "sandbox tests as uid 65534: skipped, the build tree is not readable by that user ($(pwd))"
  fi
fi

if [[ "${XCORE_SKIP_SANITIZERS:-0}" != 1 ]]; then
  bash scripts/build.sh asan
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --preset asan
  bash scripts/build.sh tsan
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp ctest --preset tsan
fi
