// WebSocket connections carrying text messages (Boost.Beast, TLS with OpenSSL), for remote nodes: the
// node dials out, the host listens. No Beast or Asio here: the engine and its links are opaque.
//
// - A WsEngine owns the I/O threads; every link it makes is served by them and closed when it goes.
// - A link's handlers run on an I/O thread, one at a time per link, and must not block: hand work to
//   threads of your own.
// - A message over max_message closes the link (the peer, never the process, pays); how many messages a
//   peer may send is the protocol's to judge (WsRpc). Idle links are pinged; one that does not answer is closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <xcore/error.hpp>

namespace xcore::inline v1::net {

struct WsLimits {
  std::size_t max_message = 8u << 20;       // bytes of one message; a bigger one closes the link
  std::size_t max_queued = 64u << 20;        // bytes waiting to be sent; send() beyond fails
  std::chrono::milliseconds handshake_timeout{10000};
  // No traffic for half of this: a ping goes out; none for all of it: the link is closed.
  std::chrono::milliseconds idle_timeout{20000};
};

class WsLink {
 public:
  using OnMessage = std::function<void(std::string text)>;
  using OnClosed = std::function<void(const Error& why)>;
  virtual ~WsLink() = default;
  // Starts reading. on_closed is called once, whichever side ended the link.
  virtual void start(OnMessage on_message, OnClosed on_closed) = 0;
  // Queues one text message; fails (unavailable) once the link is closed, or when too much waits.
  virtual Result<void> send(std::string text) = 0;
  // Sends a close frame saying why and ends the link. Idempotent.
  virtual void close(std::string_view reason) = 0;
  virtual bool closed() const = 0;
  virtual std::string remote_address() const = 0;
};

// Where to dial: ws://host[:port]/path or wss://host[:port]/path.
struct WsDialOptions {
  std::string url;
  std::map<std::string, std::string> headers;  // sent with the upgrade request (Authorization, ...)
  std::string ca_file;   // wss: verify the server against these CAs (default: the system's)
  // wss: hex SHA-256 of the server certificate's public key (SubjectPublicKeyInfo, as `openssl x509 -pubkey
  // | openssl pkey -pubin -outform der | sha256sum` prints). Set, the key must match, and a certificate no
  // CA signed (a self-signed one) is accepted for it.
  std::string pinned_sha256;
  std::chrono::milliseconds connect_timeout{10000};
  WsLimits limits;
};

// An upgrade request the listener received, before it is accepted.
struct WsUpgrade {
  std::string target;         // the request's path and query
  std::string remote_address;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string header(std::string_view lower_name) const {
    auto it = headers.find(std::string(lower_name));
    return it == headers.end() ? std::string() : it->second;
  }
};

// Decides on an upgrade: an error refuses it (answered with the error's HTTP status and message); an
// accepted one returns what takes the link once the handshake is done.
using WsAuthorize = std::function<Result<std::function<void(std::shared_ptr<WsLink>)>>(const WsUpgrade&)>;

struct WsListenOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port
  std::string tls_cert_file, tls_key_file;  // both set: wss
  WsLimits limits;
  std::size_t max_connections = 4096;  // beyond: refused before reading
  std::size_t max_upgrade_bytes = 16384;  // the upgrade request's headers
};

class WsEngine {
 public:
  explicit WsEngine(unsigned threads = 1, std::string thread_name = "xcore-ws");
  ~WsEngine();  // stops listening, closes every link and joins the threads
  WsEngine(const WsEngine&) = delete;
  WsEngine& operator=(const WsEngine&) = delete;

  // Connects, (TLS,) and upgrades; blocks up to connect_timeout. Errors say which step failed: the address,
  // the certificate, or the server's answer (its status and body, e.g. a refused token).
  Result<std::shared_ptr<WsLink>> dial(const WsDialOptions& options);
  // Starts accepting; returns the port. One listener per engine.
  Result<std::uint16_t> listen(const WsListenOptions& options, WsAuthorize authorize);
  // Links open now (accepted and dialled).
  std::size_t open_links() const;

  struct Impl;  // opaque: websocket.cpp's links share it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace xcore::inline v1::net
