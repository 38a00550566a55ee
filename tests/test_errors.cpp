// xcore::Error and Result: the error-as-value helpers, the mappings of each code (name, HTTP, JSON-RPC, C
// status), and misuse of a Result, which aborts rather than throws.
#include <doctest/doctest.h>

#include <xcore/error.hpp>

#include "runners/abi_codec.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <set>
#include <string>

using namespace xcore;

namespace {

Result<int> parse_positive(int n) {
  if (n <= 0) return Error{ErrorCode::invalid_argument, "not positive"};
  return n;
}

Result<int> doubled(int n) {
  XCORE_ASSIGN_OR_RETURN(auto v, parse_positive(n));
  return v * 2;
}

Result<void> checked(int n) {
  XCORE_TRY(parse_positive(n));
  return ok();
}

// Runs `f` in a child process and returns how it ended.
template <class F>
int ends_with(F f) {
  pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGABRT, SIG_DFL);  // the test framework's crash handler stays out of it
    ::close(1);
    ::close(2);  // the message is the report, not the test's output
    f();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

}  // namespace

TEST_CASE("Result, XCORE_TRY and XCORE_ASSIGN_OR_RETURN carry values and errors") {
  CHECK(doubled(21).value() == 42);
  auto bad = doubled(-1);
  REQUIRE(!bad.ok());
  CHECK(bad.error().code == ErrorCode::invalid_argument);
  CHECK(bad.error().message == "not positive");
  CHECK(bad.value_or(7) == 7);
  CHECK(checked(1).ok());
  CHECK(checked(0).error().code == ErrorCode::invalid_argument);
  Result<std::string> moved = std::string("text");
  CHECK(std::move(moved).value() == "text");
}

TEST_CASE("asking a Result for what it does not hold aborts with a message, it never throws") {
  auto value_of_error = ends_with([] { (void)parse_positive(-1).value(); });
  CHECK(WIFSIGNALED(value_of_error));
  CHECK(WTERMSIG(value_of_error) == SIGABRT);
  auto error_of_value = ends_with([] { (void)parse_positive(1).error(); });
  CHECK(WIFSIGNALED(error_of_value));
  CHECK(WTERMSIG(error_of_value) == SIGABRT);
  auto error_of_success = ends_with([] { (void)checked(1).error(); });
  CHECK(WIFSIGNALED(error_of_success));
  CHECK(WTERMSIG(error_of_success) == SIGABRT);
}

TEST_CASE("every code has one name, one HTTP status, one JSON-RPC code and one C status, and they map back") {
  std::set<std::string_view> names;
  std::set<int> jsonrpc;
  for (int i = 0; i <= static_cast<int>(ErrorCode::last); ++i) {
    const auto code = static_cast<ErrorCode>(i);
    const auto name = to_string(code);
    INFO(name);
    CHECK(names.insert(name).second);
    CHECK(jsonrpc.insert(jsonrpc_code(code)).second);
    ErrorCode back{};
    REQUIRE(parse_error_code(name, back));
    CHECK(back == code);
    CHECK(http_status(code) >= 400);
    CHECK(http_status(code) < 600);
    // A plugin's `internal` is its own failure, not xcore's bug: read as plugin_error.
    CHECK(code_from_status(status_from_code(code)) == (code == ErrorCode::internal ? ErrorCode::plugin_error : code));
  }
  ErrorCode unused{};
  CHECK(!parse_error_code("no_such_code", unused));
  CHECK(code_from_status(XCORE_OK) == ErrorCode::plugin_error);  // a plugin that failed and said it succeeded
  CHECK(code_from_status(99) == ErrorCode::plugin_error);        // unknown statuses from a newer plugin
  CHECK(http_status(ErrorCode::plugin_error) == 502);
  CHECK(http_status(ErrorCode::internal) == 500);
  CHECK(http_status(ErrorCode::unauthenticated) == 401);
  CHECK(http_status(ErrorCode::permission_denied) == 403);
  CHECK(http_status(ErrorCode::not_found) == 404);
  CHECK(http_status(ErrorCode::resource_exhausted) == 429);
}
