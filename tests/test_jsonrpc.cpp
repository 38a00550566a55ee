// The one JSON-RPC codec and peer, on their own: two peers in this process over a socket pair.
#include <doctest/doctest.h>

#include "jsonrpc/jsonrpc.hpp"
#include "jsonrpc/rpc_peer.hpp"

#include <boost/json/parse.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

using namespace xcore;
using namespace xcore::jsonrpc;
using Clock = std::chrono::steady_clock;

namespace {

std::string strip(std::string line) {
  if (!line.empty() && line.back() == '\n') line.pop_back();
  return line;
}

// Two connected peers; `b` serves with the handler given, `a` too if it is given one.
struct Pair {
  int fds[2] = {-1, -1};
  std::unique_ptr<RpcPeer> a, b;
  explicit Pair(RpcPeer::RequestHandler b_serves, RpcPeer::RequestHandler a_serves = nullptr, RpcPeer::NotificationHandler b_hears = nullptr,
                RpcPeer::Options options = {}) {
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    a = std::make_unique<RpcPeer>(fds[0], fds[0], options);
    b = std::make_unique<RpcPeer>(fds[1], fds[1], options);
    a->start(std::move(a_serves), nullptr, nullptr);
    b->start(std::move(b_serves), std::move(b_hears), nullptr);
  }
};

Result<json::value> echo(const std::string&, const json::value& params) { return params; }

}  // namespace

TEST_CASE("the codec: each kind of message round-trips, and what is not JSON-RPC is named") {
  auto req = parse(strip(request(json::value(7), "tools/call", json::object{{"name", "echo"}})));
  REQUIRE(req.ok());
  CHECK(req->kind == Message::Kind::request);
  CHECK(req->id == json::value(7));
  CHECK(req->method == "tools/call");
  CHECK(req->params.at("name") == "echo");

  auto note = parse(strip(notification("notifications/initialized", json::object{})));
  REQUIRE(note.ok());
  CHECK(note->kind == Message::Kind::notification);

  auto res = parse(strip(result(json::value("x"), json::array{1, 2})));
  REQUIRE(res.ok());
  CHECK(res->kind == Message::Kind::result);
  CHECK(res->id == json::value("x"));
  CHECK(res->result.as_array().size() == 2);

  // An xcore error crosses as a JSON-RPC error and comes back as the same code and message.
  auto err = parse(strip(error(json::value(3), Error{ErrorCode::permission_denied, "no entry"})));
  REQUIRE(err.ok());
  CHECK(err->kind == Message::Kind::error);
  auto back = to_error(*err);
  CHECK(back.code == ErrorCode::permission_denied);
  CHECK(back.message == "no entry");

  for (const char* bad : {"not json", "[1,2]", R"({"jsonrpc":"1.0","method":"x"})", R"({"jsonrpc":"2.0"})", R"({"jsonrpc":"2.0","method":5})"}) {
    INFO(bad);
    auto m = parse(bad);
    CHECK(!m.ok());
    if (!m.ok()) CHECK(m.error().code == ErrorCode::invalid_argument);
  }
}

TEST_CASE("a call gets its own answer, sequentially and from many threads at once") {
  Pair p(echo);
  for (int i = 0; i < 200; ++i) {
    auto r = p.a->call("echo", json::object{{"i", i}}, Clock::now() + std::chrono::seconds(10));
    REQUIRE(r.ok());
    CHECK(r->at("i") == i);
  }
  std::atomic<int> wrong{0}, failed{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t)
    callers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto r = p.a->call("echo", json::object{{"t", t}, {"i", i}}, Clock::now() + std::chrono::seconds(10));
        if (!r) ++failed;
        else if (r->at("t") != t || r->at("i") != i) ++wrong;
      }
    });
  for (auto& c : callers) c.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
}

TEST_CASE("an answer after the caller gave up is dropped, never handed to the next caller") {
  std::mutex m;
  std::condition_variable cv;
  bool release = false;
  Pair p([&](const std::string& method, const json::value& params) -> Result<json::value> {
    if (method == "slow") {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return release; });
    }
    return params;
  });
  auto late = p.a->call("slow", json::object{{"who", "late"}}, Clock::now() + std::chrono::milliseconds(50));
  REQUIRE(!late.ok());
  CHECK(late.error().code == ErrorCode::timeout);
  {
    std::lock_guard lock(m);
    release = true;
  }
  cv.notify_all();
  auto next = p.a->call("echo", json::object{{"who", "next"}}, Clock::now() + std::chrono::seconds(10));
  REQUIRE(next.ok());
  CHECK(next->at("who") == "next");
}

TEST_CASE("requests are served concurrently") {
  // Four requests that each wait until all four have started: they finish only if served at once.
  std::mutex m;
  std::condition_variable cv;
  int started = 0;
  Pair p(
      [&](const std::string& method, const json::value& params) -> Result<json::value> {
        if (method == "together") {
          std::unique_lock lock(m);
          ++started;
          cv.notify_all();
          if (!cv.wait_for(lock, std::chrono::seconds(10), [&] { return started >= 4; })) return Error{ErrorCode::timeout, "not concurrent"};
          return params;
        }
        return params;
      });
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i)
    callers.emplace_back([&] {
      if (p.a->call("together", json::object{}, Clock::now() + std::chrono::seconds(10))) ++ok;
    });
  for (auto& c : callers) c.join();
  CHECK(ok == 4);
}

TEST_CASE("nested calls: a request whose handler calls the other side, which calls back, completes") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  RpcPeer host(fds[0], fds[0], {}), child(fds[1], fds[1], {});
  // host -> child "work"; the child asks the host "lookup"; the host's lookup asks the child "leaf".
  child.start(
      [&](const std::string& method, const json::value& params) -> Result<json::value> {
        if (method == "leaf") return json::value("leaf");
        auto r = child.call("lookup", params, Clock::now() + std::chrono::seconds(10));
        if (!r) return std::move(r).error();
        return json::object{{"work", *r}};
      },
      nullptr, nullptr);
  host.start(
      [&](const std::string&, const json::value&) -> Result<json::value> {
        auto r = host.call("leaf", json::object{}, Clock::now() + std::chrono::seconds(10));
        if (!r) return std::move(r).error();
        return json::object{{"lookup", *r}};
      },
      nullptr, nullptr);
  for (int i = 0; i < 50; ++i) {
    auto r = host.call("work", json::object{}, Clock::now() + std::chrono::seconds(10));
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(r->at("work").at("lookup") == "leaf");
  }
}

TEST_CASE("notifications arrive in the order they were sent") {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::int64_t> seen;
  Pair p(echo, nullptr, [&](const std::string&, const json::value& params) {
    std::lock_guard lock(m);
    seen.push_back(params.at("n").as_int64());
    cv.notify_all();
  });
  // Interleaved with calls, so that both the pool's reader and a calling thread read them.
  for (int n = 0; n < 500; ++n) {
    REQUIRE(p.a->notify("tick", json::object{{"n", n}}).ok());
    if (n % 50 == 0) REQUIRE(p.a->call("echo", json::object{}, Clock::now() + std::chrono::seconds(10)).ok());
  }
  std::unique_lock lock(m);
  REQUIRE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return seen.size() == 500; }));
  for (std::size_t i = 0; i < seen.size(); ++i) REQUIRE(seen[i] == static_cast<std::int64_t>(i));
}

TEST_CASE("a line over the limit ends the connection, and every pending call fails with the reason") {
  RpcPeer::Options small;
  small.max_line = 1024;
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  RpcPeer a(fds[0], fds[0], small);
  a.start(nullptr, nullptr, nullptr);
  std::thread other([fd = fds[1]] {
    // Reads the request, then answers with a line far over the limit.
    char buf[4096];
    (void)!::read(fd, buf, sizeof buf);
    std::string big = R"({"jsonrpc":"2.0","id":1,"result":")" + std::string(8192, 'x') + "\"}\n";
    (void)!::write(fd, big.data(), big.size());
  });
  auto r = a.call("anything", json::object{}, Clock::now() + std::chrono::seconds(10));
  other.join();
  REQUIRE(!r.ok());
  CHECK(r.error().code == ErrorCode::plugin_crashed);
  CHECK_MESSAGE(r.error().message.find("exceeds the 1024 byte limit") != std::string::npos, r.error().message);
  CHECK(a.closed());
  CHECK(!a.call("again", json::object{}, Clock::now() + std::chrono::seconds(1)).ok());
  ::close(fds[1]);
}

TEST_CASE("close() fails the calls that wait, at once") {
  // The other side closes this side from its handler: the call is then known to be waiting.
  RpcPeer* a = nullptr;
  Pair p([&](const std::string&, const json::value&) -> Result<json::value> {
    a->close(Error{ErrorCode::unavailable, "stopped by the test"});
    return json::object{};
  });
  a = p.a.get();
  auto r = p.a->call("hang", json::object{}, std::nullopt);  // no deadline: only close() or the answer ends it
  REQUIRE(!r.ok());
  CHECK(r.error().message == "stopped by the test");
}
