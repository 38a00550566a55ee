// The server's connection layer under clients that hold connections: idle sockets, a header byte at a
// time, a body that never ends, and one address opening many. Each case is the attack that used to take
// the server down (64 idle sockets failed 4 of 5 probes; 40 slow-header clients stopped every probe). The
// real server on 127.0.0.1, an ephemeral port; the deadlines are set short so the cases run in seconds.
#include <doctest/doctest.h>

#include "support/server_harness.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace xcore_test;
namespace json = boost::json;

namespace {

// A connection to the server from `source` (any 127.0.0.0/8 address is this machine).
class Connection {
 public:
  explicit Connection(int port, const char* source = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<std::uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool send(std::string_view bytes) { return ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()); }

  // One whole answer (headers and Content-Length body); what came when the connection closed or
  // `wait_ms` passed first.
  std::string answer(int wait_ms = 3000) {
    bool closed = false;
    return receive(wait_ms, closed, true);
  }

  // What the server sends until it closes the connection or `wait_ms` pass; `closed` says which.
  std::string receive(int wait_ms, bool& closed, bool one_answer = false) {
    std::string out;
    closed = false;
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    char buf[4096];
    for (;;) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()).count();
      if (left <= 0) return out;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return out;
      const auto n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed = true;
        return out;
      }
      out.append(buf, static_cast<std::size_t>(n));
      if (one_answer && complete(out)) return out;
    }
  }

  static bool complete(const std::string& text) {
    const auto end = text.find("\r\n\r\n");
    if (end == std::string::npos) return false;
    const auto at = text.find("Content-Length: ");
    const std::size_t length = at == std::string::npos || at > end ? 0 : std::stoul(text.substr(at + 16));
    return text.size() >= end + 4 + length;
  }

 private:
  int fd_ = -1;
};

// A fresh client's GET /healthz, as a load balancer's probe would send it.
int probe(int port) {
  httplib::Client c("127.0.0.1", port);
  c.set_connection_timeout(3, 0);
  c.set_read_timeout(3, 0);
  auto r = c.Get("/healthz");
  return r ? r->status : 0;
}

}  // namespace

TEST_CASE("idle sockets and slow headers do not hold the workers; slow headers are cut off at their deadline") {
  TempDir tmp;
  // 4 workers kept (the harness's --threads 4); idle connections may stay a minute, headers get 1 s.
  ServerProcess server(tmp / "var", {"XCORE_HEADER_TIMEOUT_MS=1000", "XCORE_IDLE_TIMEOUT_MS=60000"});
  std::vector<std::unique_ptr<Connection>> idle, slow;
  for (int i = 0; i < 64; ++i) idle.push_back(std::make_unique<Connection>(server.port()));
  for (int i = 0; i < 40; ++i) {
    slow.push_back(std::make_unique<Connection>(server.port()));
    REQUIRE(slow.back()->send("GET /healthz HTTP/1.1\r\n"));
  }
  // The slow clients keep sending a header line every 100 ms, as long as the server lets them.
  std::atomic<bool> done{false};
  std::thread trickle([&] {
    for (int i = 0; i < 50 && !done; ++i) {
      for (auto& c : slow) c->send(fmt::format("X-Slow-{}: a\r\n", i));
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  int answered = 0;
  for (int i = 0; i < 5; ++i) answered += probe(server.port()) == 200;
  CHECK(answered == 5);

  // Every slow client is told 408 and closed once its headers' second is up (10 s: a bound, not a timing).
  int timed_out = 0;
  for (auto& c : slow) {
    bool closed = false;
    auto text = c->receive(10'000, closed);
    CHECK_MESSAGE(closed, "a slow-header connection was still open");
    if (text.starts_with("HTTP/1.1 408") && text.find("\"code\":\"timeout\"") != std::string::npos &&
        text.find("headers did not arrive within 1000 ms") != std::string::npos)
      ++timed_out;
    else
      MESSAGE(text);
  }
  CHECK(timed_out == 40);
  done = true;
  trickle.join();
  // The idle ones are still open (their timeout is a minute) and still served when they speak.
  auto& first = *idle.front();
  REQUIRE(first.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(first.answer().starts_with("HTTP/1.1 200"));
  CHECK(probe(server.port()) == 200);
}

TEST_CASE("a request line that never ends is a 408 too, and an idle connection is closed at its idle timeout") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_HEADER_TIMEOUT_MS=500", "XCORE_IDLE_TIMEOUT_MS=500"});
  Connection partial(server.port());
  REQUIRE(partial.send("GET /heal"));
  bool closed = false;
  auto text = partial.receive(10'000, closed);
  CHECK(closed);
  CHECK(text.starts_with("HTTP/1.1 408"));
  CHECK(text.find("headers did not arrive within 500 ms") != std::string::npos);

  // Idle: closed without a word (nothing was asked).
  Connection idle(server.port());
  text = idle.receive(10'000, closed);
  CHECK(closed);
  CHECK(text.empty());
  // An answered request, then silence: closed too.
  Connection kept(server.port());
  REQUIRE(kept.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  text = kept.receive(10'000, closed);
  CHECK(closed);
  CHECK(text.starts_with("HTTP/1.1 200"));
  CHECK(text.find("Keep-Alive: timeout=1") != std::string::npos);  // what the client is told: 500 ms, rounded up
}

TEST_CASE("a body that stops coming is a 408 at the body's deadline, and the connection is closed") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_BODY_TIMEOUT_MS=500"});
  Connection c(server.port());
  REQUIRE(c.send("POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"username\":"));
  bool closed = false;
  auto text = c.receive(10'000, closed);
  CHECK(closed);
  CHECK(text.starts_with("HTTP/1.1 408"));
  CHECK(text.find("body did not arrive within 500 ms") != std::string::npos);
  CHECK(probe(server.port()) == 200);
}

TEST_CASE("one address holds at most max_connections_per_address connections; other addresses are served") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_MAX_CONNECTIONS_PER_ADDRESS=8", "XCORE_IDLE_TIMEOUT_MS=60000"});
  std::vector<std::unique_ptr<Connection>> held;
  for (int i = 0; i < 8; ++i) held.push_back(std::make_unique<Connection>(server.port(), "127.0.0.3"));
  // The server counts a connection once a worker takes it: make sure all 8 are counted.
  for (auto& c : held) {
    REQUIRE(c->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE(c->answer().starts_with("HTTP/1.1 200"));
  }
  Connection ninth(server.port(), "127.0.0.3");
  bool closed = false;
  auto text = ninth.receive(5000, closed);
  CHECK(closed);
  CHECK(text.starts_with("HTTP/1.1 429"));
  CHECK(text.find("Retry-After: 1") != std::string::npos);
  CHECK(text.find("127.0.0.3 has 8 connections open") != std::string::npos);
  CHECK(text.find("\"code\":\"resource_exhausted\"") != std::string::npos);

  // Another address is not affected.
  Connection other(server.port(), "127.0.0.4");
  REQUIRE(other.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  CHECK(other.answer().starts_with("HTTP/1.1 200"));

  // A closed connection frees its place.
  held.pop_back();
  std::string answer;
  for (int attempt = 0; attempt < 50 && !answer.starts_with("HTTP/1.1 200"); ++attempt) {
    Connection again(server.port(), "127.0.0.3");
    REQUIRE(again.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    answer = again.answer();
    if (!answer.starts_with("HTTP/1.1 200")) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the server sees the close
  }
  CHECK(answer.starts_with("HTTP/1.1 200"));
}

TEST_CASE("workers grow with the connections held and a stop ends idle connections at once") {
  TempDir tmp;
  ServerProcess server(tmp / "var", {"XCORE_IDLE_TIMEOUT_MS=60000"});
  // 200 connections each with an answered request open: far more than the 4 workers kept.
  std::vector<std::unique_ptr<Connection>> held;
  for (int i = 0; i < 200; ++i) {
    held.push_back(std::make_unique<Connection>(server.port(), i % 2 ? "127.0.0.5" : "127.0.0.6"));
    REQUIRE(held.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    REQUIRE(held.back()->answer().starts_with("HTTP/1.1 200"));
  }
  CHECK(probe(server.port()) == 200);
  // SIGTERM: the server stops without waiting out the idle connections' minute (the harness waits for it).
  const auto start = std::chrono::steady_clock::now();
  CHECK(server.stop(SIGTERM) == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  for (auto& c : held) {
    bool closed = false;
    c->receive(3000, closed);
    CHECK(closed);
  }
}
