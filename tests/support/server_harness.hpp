// The reference server as a real process for tests: started on 127.0.0.1 with an ephemeral port, talked
// to over HTTP.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>

#include "crypto.hpp"
#include "support/process.hpp"
#include "support/test_support.hpp"


namespace xcore_test {
namespace json = boost::json;

inline namespace server_harness {

// 32 bytes as hex: the tests know the master key, so they can sign tokens of their own.
const std::string kMasterKey = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const std::string kAdminPassword = "admin-password-1";

inline std::string jwt_key() {
  std::string raw;
  for (std::size_t i = 0; i < kMasterKey.size(); i += 2) raw.push_back(static_cast<char>(std::stoi(kMasterKey.substr(i, 2), nullptr, 16)));
  return xcore::server::hmac_sha256(raw, "xcore jwt signing key v1");
}

// One xcore-server process. Its stdout is read until it says where it listens.
class ServerProcess {
 public:
  // `log_file`: where the server's stderr (its log) goes; the test's own stderr when empty.
  explicit ServerProcess(const fs::path& data, std::vector<std::string> extra_env = {}, const fs::path& plugins = XCORE_EXAMPLE_PLUGIN_DIR,
                         const fs::path& log_file = {}) {
    int out[2];
    REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
    std::vector<std::string> args{XCORE_SERVER_PATH, "--listen", "127.0.0.1:0", "--data-dir", data.string(), "--plugins", plugins.string(),
                                  "--threads", "4", "--env-file", "/nonexistent"};
    std::vector<std::string> env{"XCORE_ADMIN_PASSWORD=" + kAdminPassword, "XCORE_MASTER_KEY=" + kMasterKey, "PATH=/usr/bin:/bin",
                                 // every answer held against its route entry: a handler that drifts from the document is a 500
                                 "XCORE_CHECK_ANSWERS=1"};
    // The tsan test preset sets BOTAN_MLOCK_POOL_SIZE=0: Botan recycles its locked pool's memory inside the
    // uninstrumented library, where ThreadSanitizer cannot see it, so two requests sealing secrets look
    // like a race. Without the pool that memory comes from malloc, which it does see.
    for (char** e = environ; *e; ++e)
      if (std::string_view(*e).find("SAN_OPTIONS=") != std::string_view::npos || std::string_view(*e).starts_with("BOTAN_MLOCK_POOL_SIZE="))
        env.emplace_back(*e);
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    pid_ = spawn_process(std::move(args), std::move(env), out[1], log_file);
    ::close(out[1]);
    std::string seen;
    char buf[512];
    while (port_ == 0) {
      ssize_t n = ::read(out[0], buf, sizeof(buf));
      if (n <= 0) break;
      seen.append(buf, static_cast<std::size_t>(n));
      if (auto at = seen.find("listening on http://127.0.0.1:"); at != std::string::npos) {
        auto rest = seen.substr(at + 30);
        if (rest.find('\n') != std::string::npos) port_ = std::stoi(rest);
      }
    }
    ::close(out[0]);
    REQUIRE_MESSAGE(port_ > 0, seen);
  }
  ~ServerProcess() {
    if (pid_ > 0) stop(SIGTERM);
  }
  int stop(int sig) {
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

struct Answer {
  int status = 0;
  json::value body;
  httplib::Headers headers;
};

class Api {
 public:
  explicit Api(int port) : client_("127.0.0.1", port) { client_.set_read_timeout(30, 0); }
  Answer send(const std::string& method, const std::string& path, const std::string& body = {}, const std::string& token = {}) {
    httplib::Headers h;
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    httplib::Result r = method == "GET"      ? client_.Get(path, h)
                        : method == "POST"   ? client_.Post(path, h, body, "application/json")
                        : method == "PUT"    ? client_.Put(path, h, body, "application/json")
                        : method == "DELETE" ? client_.Delete(path, h, body, "application/json")
                                             : client_.Patch(path, h, body, "application/json");
    REQUIRE_MESSAGE(r, "no answer to " << method << " " << path);
    Answer a{r->status, {}, r->headers};
    boost::system::error_code ec;
    a.body = json::parse(r->body, ec);
    if (ec) a.body = json::string(r->body);
    return a;
  }
  std::string login(const std::string& user, const std::string& password, const std::string& tenant = "default") {
    auto a = send("POST", "/api/v1/auth/login", json::serialize(json::object{{"username", user}, {"password", password}, {"tenant", tenant}}));
    REQUIRE_MESSAGE(a.status == 200, json::serialize(a.body));
    CHECK(a.body.at("token_type") == "bearer");
    CHECK(a.body.at("expires_in").to_number<int>() > 0);
    return std::string(a.body.at("access_token").as_string());
  }

 private:
  httplib::Client client_;
};

// A plain TCP connection to the server on 127.0.0.1 (the caller closes it).
inline int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Bytes as a client wrote them (no framing added), and all the server answers until it closes; send
// "Connection: close" in them. A bound of 10 s keeps a server that never answers from hanging the test.
inline std::string raw_request(int port, const std::string& bytes) {
  const int fd = connect_loopback(port);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()));
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) out.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  return out;
}

inline std::string code_of(const Answer& a) {
  if (!a.body.is_object() || !a.body.as_object().contains("error")) return {};
  return std::string(a.body.at("error").at("code").as_string());
}

inline std::string message_of(const Answer& a) {
  if (!a.body.is_object() || !a.body.as_object().contains("error")) return {};
  return std::string(a.body.at("error").at("message").as_string());
}

// Creates a user as `admin` (password "password-123"); the test stops if the server refuses.
inline void add_user(Api& api, const std::string& admin, const std::string& name, const std::string& role, const std::string& tenant = "default") {
  auto r = api.send("POST", "/api/v1/users",
                    json::serialize(json::object{{"username", name}, {"password", "password-123"}, {"role", role}, {"tenant", tenant}}), admin);
  REQUIRE_MESSAGE(r.status == 201, json::serialize(r.body));
}

}  // namespace server_harness
}  // namespace xcore_test
