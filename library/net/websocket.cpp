// WebSocket links over Boost.Beast: one strand per link, coroutines for the handshakes and the reader, a
// queue for writes. TLS (wss) with OpenSSL through Asio's ssl::stream.
#include "net/websocket.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "core/thread_name.hpp"

namespace xcore::inline v1::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

namespace {

auto with_ec(beast::error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Why a read ended, in words a log reader understands.
std::string read_failure(const beast::error_code& ec, const WsLimits& limits) {
  if (ec == websocket::error::closed) return "the peer closed the connection";
  if (ec == websocket::error::message_too_big) return fmt::format("a message was larger than {} bytes", limits.max_message);
  if (ec == beast::error::timeout) return "the peer stopped answering (no traffic, no answer to a ping)";
  if (ec == asio::error::eof || ec == asio::error::connection_reset) return "the connection dropped";
  if (ec == asio::error::operation_aborted) return "the connection was closed";
  return ec.message();
}

struct ParsedUrl {
  bool tls = false;
  std::string host, port, target;
};

Result<ParsedUrl> parse_ws_url(std::string_view url) {
  ParsedUrl p;
  std::string_view rest;
  if (url.starts_with("ws://")) {
    rest = url.substr(5);
  } else if (url.starts_with("wss://")) {
    p.tls = true;
    rest = url.substr(6);
  } else {
    return Error{ErrorCode::invalid_argument, fmt::format("url '{}': expected ws:// or wss://", url)};
  }
  auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  p.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (authority.empty()) return Error{ErrorCode::invalid_argument, fmt::format("url '{}': no host", url)};
  if (authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) return Error{ErrorCode::invalid_argument, fmt::format("url '{}': unclosed '['", url)};
    p.host = std::string(authority.substr(1, close - 1));
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() == ':') p.port = std::string(authority.substr(1));
  } else {
    auto colon = authority.rfind(':');
    p.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) p.port = std::string(authority.substr(colon + 1));
  }
  if (p.port.empty()) p.port = p.tls ? "443" : "80";
  if (p.host.empty() || !std::all_of(p.port.begin(), p.port.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return Error{ErrorCode::invalid_argument, fmt::format("url '{}': bad host or port", url)};
  return p;
}

// SHA-256 of a certificate's SubjectPublicKeyInfo, in hex.
std::string public_key_sha256(X509* cert) {
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (len <= 0) return {};
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_len = 0;
  EVP_Digest(der, static_cast<std::size_t>(len), digest, &digest_len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < digest_len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

// Asio opens sockets without close-on-exec: a process the host starts (a plugin, a command) must not
// inherit a link or the listening socket, which would keep them open after the host let go.
void set_cloexec(int fd) { ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC); }

websocket::stream_base::timeout timeouts(const WsLimits& limits) {
  websocket::stream_base::timeout t;
  t.handshake_timeout = limits.handshake_timeout;
  t.idle_timeout = limits.idle_timeout;
  t.keep_alive_pings = true;
  return t;
}

}  // namespace

// ---- the engine's state -----------------------------------------------------------------------------------

struct WsEngine::Impl {
  asio::io_context ioc;
  asio::executor_work_guard<asio::io_context::executor_type> work{ioc.get_executor()};
  std::vector<std::thread> threads;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::ssl::context> server_tls;
  WsListenOptions listen_options;
  WsAuthorize authorize;
  std::atomic<std::size_t> open{0};
  std::atomic<bool> stopping{false};

  asio::strand<asio::io_context::executor_type> acceptor_strand{asio::make_strand(ioc)};

  // What shutdown needs of a link besides WsLink: ending it without a closing handshake.
  struct Tracked : WsLink {
    virtual void hard_close() = 0;
  };
  std::mutex links_mutex;
  std::list<std::weak_ptr<Tracked>> links;  // to close at shutdown

  void track(const std::shared_ptr<Tracked>& link) {
    std::lock_guard lock(links_mutex);
    links.remove_if([](const auto& w) { return w.expired(); });
    links.push_back(link);
  }
};

// ---- one link ------------------------------------------------------------------------------------------

template <class Stream>
class Session final : public WsEngine::Impl::Tracked, public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(websocket::stream<Stream> ws, WsLimits limits, std::string remote, std::shared_ptr<WsEngine::Impl> engine,
          std::shared_ptr<void> keep = {})
      : engine_(std::move(engine)), keep_(std::move(keep)), ws_(std::move(ws)), limits_(limits), remote_(std::move(remote)) {
    engine_->open.fetch_add(1);
  }
  ~Session() override {
    if (!finished_) engine_->open.fetch_sub(1);
  }

  void start(OnMessage on_message, OnClosed on_closed) override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), m = std::move(on_message), c = std::move(on_closed)]() mutable {
      self->on_message_ = std::move(m);
      self->on_closed_ = std::move(c);
      if (self->finished_) {
        self->deliver_closed();
        return;
      }
      asio::co_spawn(self->ws_.get_executor(), self->read_loop(), asio::detached);
    });
  }

  Result<void> send(std::string text) override {
    if (closed_.load()) return Error{ErrorCode::unavailable, fmt::format("the connection to {} is closed", remote_)};
    const auto size = text.size();
    if (queued_.fetch_add(size) + size > limits_.max_queued) {
      queued_.fetch_sub(size);
      return Error{ErrorCode::resource_exhausted, fmt::format("more than {} bytes wait to be sent to {}", limits_.max_queued, remote_)};
    }
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), t = std::move(text)]() mutable {
      self->queue_.push_back(std::move(t));
      if (!self->writing_) self->write_next();
    });
    return ok();
  }

  void close(std::string_view reason) override {
    closed_.store(true);
    asio::post(ws_.get_executor(), [self = this->shared_from_this(), r = std::string(reason)] {
      self->begin_close(websocket::close_code::normal, r, Error{ErrorCode::unavailable, fmt::format("closed here: {}", r)});
    });
  }

  // Ends the link without a closing handshake (shutdown, a peer that does not answer one).
  void hard_close() override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this()] {
      self->finish(Error{ErrorCode::unavailable, "the connection was closed"});
    });
  }

  bool closed() const override { return closed_.load(); }
  std::string remote_address() const override { return remote_; }

 private:
  asio::awaitable<void> read_loop() {
    auto self = this->shared_from_this();
    beast::flat_buffer buffer;
    for (;;) {
      beast::error_code ec;
      std::size_t n = co_await ws_.async_read(buffer, with_ec(ec));
      if (ec) {
        finish(Error{ErrorCode::unavailable, fmt::format("{}: {}", remote_, read_failure(ec, limits_))});
        co_return;
      }
      std::string text = beast::buffers_to_string(buffer.data());
      buffer.consume(n);
      if (finished_ || closing_) co_return;
      if (on_message_) {
        try {
          on_message_(std::move(text));
        } catch (...) {
          // A handler that throws ends its link, not the I/O thread.
          begin_close(websocket::close_code::internal_error, "internal error", Error{ErrorCode::internal, "a message handler threw"});
          co_return;
        }
      }
    }
  }

  void write_next() {
    if (queue_.empty() || finished_ || closing_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->queued_.fetch_sub(self->queue_.front().size());
      self->queue_.pop_front();
      if (ec) {
        self->writing_ = false;
        self->finish(Error{ErrorCode::unavailable, fmt::format("{}: cannot send: {}", self->remote_, ec.message())});
        return;
      }
      self->write_next();
    });
  }

  void begin_close(websocket::close_code code, std::string reason, Error why) {
    if (!why_) why_ = std::move(why);
    closed_.store(true);
    if (closing_ || finished_) return;
    closing_ = true;
    if (reason.size() > 120) reason.resize(120);  // a close frame's payload is at most 125 bytes
    ws_.async_close(websocket::close_reason(code, reason), [self = this->shared_from_this()](beast::error_code) {
      self->finish(Error{ErrorCode::unavailable, "closed"});
    });
  }

  void finish(Error why) {
    if (!why_) why_ = std::move(why);
    closed_.store(true);
    if (finished_) return;
    finished_ = true;
    engine_->open.fetch_sub(1);
    beast::error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).socket().close(ignored);
    deliver_closed();
  }

  void deliver_closed() {
    on_message_ = nullptr;
    auto handler = std::move(on_closed_);
    on_closed_ = nullptr;
    if (handler) {
      try {
        handler(*why_);
      } catch (...) {
      }
    }
  }

  // Declared before the stream, so destroyed after it: the io_context and TLS context outlive the socket.
  std::shared_ptr<WsEngine::Impl> engine_;
  std::shared_ptr<void> keep_;  // a dialled wss link's TLS context
  websocket::stream<Stream> ws_;
  WsLimits limits_;
  std::string remote_;
  OnMessage on_message_;
  OnClosed on_closed_;
  std::deque<std::string> queue_;
  std::atomic<std::size_t> queued_{0};
  bool writing_ = false, closing_ = false, finished_ = false;  // the strand's
  std::atomic<bool> closed_{false};
  std::optional<Error> why_;
};

namespace {

template <class Stream>
void configure(websocket::stream<Stream>& ws, const WsLimits& limits, bool server) {
  ws.set_option(timeouts(limits));
  ws.read_message_max(limits.max_message);
  ws.auto_fragment(false);
  ws.set_option(websocket::stream_base::decorator([server](auto& m) {
    m.set(server ? http::field::server : http::field::user_agent, "xcore");
  }));
}

std::string endpoint_text(const tcp::endpoint& e) {
  auto a = e.address();
  return a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), e.port()) : fmt::format("{}:{}", a.to_string(), e.port());
}

// The server side after the TCP (and TLS) handshake: read the upgrade request, ask, answer or accept.
template <class Stream>
asio::awaitable<void> serve_upgrade(std::shared_ptr<WsEngine::Impl> engine, Stream stream, std::string remote, std::shared_ptr<void> keep) {
  const auto& options = engine->listen_options;
  beast::flat_buffer buffer;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(options.max_upgrade_bytes));
  beast::get_lowest_layer(stream).expires_after(options.limits.handshake_timeout);
  beast::error_code ec;
  co_await http::async_read(stream, buffer, parser, with_ec(ec));
  if (ec) co_return;  // a client that sent no upgrade in time, or too much of one: nothing to answer
  auto request = parser.release();

  auto refuse = [&](int status, std::string body) -> asio::awaitable<void> {
    http::response<http::string_body> res{static_cast<http::status>(status), request.version()};
    res.set(http::field::server, "xcore");
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.keep_alive(false);
    res.body() = std::move(body) + "\n";
    res.prepare_payload();
    beast::error_code ignored;
    co_await http::async_write(stream, res, with_ec(ignored));
    beast::get_lowest_layer(stream).close();
  };
  if (!websocket::is_upgrade(request)) {
    co_await refuse(426, "this address takes WebSocket upgrades only");
    co_return;
  }
  WsUpgrade upgrade;
  upgrade.target = std::string(request.target());
  upgrade.remote_address = remote;
  for (const auto& field : request) upgrade.headers[lower(std::string(field.name_string()))] = std::string(field.value());
  Result<std::function<void(std::shared_ptr<WsLink>)>> accepted = Error{ErrorCode::internal, "no decision"};
  try {
    accepted = engine->authorize(upgrade);
  } catch (...) {
    accepted = Error{ErrorCode::internal, "the upgrade could not be decided"};
  }
  if (!accepted) {
    co_await refuse(http_status(accepted.error().code), accepted.error().message);
    co_return;
  }
  beast::get_lowest_layer(stream).expires_never();  // the websocket's own timeouts take over
  websocket::stream<Stream> ws(std::move(stream));
  configure(ws, options.limits, true);
  co_await ws.async_accept(request, with_ec(ec));
  if (ec) co_return;
  auto session = std::make_shared<Session<Stream>>(std::move(ws), options.limits, remote, engine, std::move(keep));
  if (engine->stopping.load()) {
    session->close("the host is shutting down");
    co_return;
  }
  engine->track(session);
  (*accepted)(session);
}

asio::awaitable<void> accept_loop(std::shared_ptr<WsEngine::Impl> engine) {
  for (;;) {
    beast::error_code ec;
    tcp::socket socket(asio::make_strand(engine->ioc));
    co_await engine->acceptor->async_accept(socket, with_ec(ec));  // on acceptor_strand
    if (ec == asio::error::operation_aborted || engine->stopping.load()) co_return;
    if (ec) continue;
    if (engine->open.load() >= engine->listen_options.max_connections) continue;  // the socket closes here
    socket.set_option(tcp::no_delay(true), ec);
    set_cloexec(socket.native_handle());
    std::string remote = endpoint_text(socket.remote_endpoint(ec));
    auto executor = socket.get_executor();
    beast::tcp_stream tcp_stream(std::move(socket));
    if (engine->server_tls) {
      asio::co_spawn(executor, [engine, s = std::move(tcp_stream), remote]() mutable -> asio::awaitable<void> {
        TlsStream tls(std::move(s), *engine->server_tls);
        beast::get_lowest_layer(tls).expires_after(engine->listen_options.limits.handshake_timeout);
        beast::error_code hec;
        co_await tls.async_handshake(asio::ssl::stream_base::server, with_ec(hec));
        if (hec) co_return;
        co_await serve_upgrade(engine, std::move(tls), remote, nullptr);
      }, asio::detached);
    } else {
      asio::co_spawn(executor, serve_upgrade(engine, std::move(tcp_stream), remote, nullptr), asio::detached);
    }
  }
}

// The client side: connect, (TLS,) upgrade.
asio::awaitable<Result<std::shared_ptr<WsEngine::Impl::Tracked>>> dial_steps(std::shared_ptr<WsEngine::Impl> engine, WsDialOptions options, ParsedUrl url) {
  auto executor = co_await asio::this_coro::executor;
  tcp::resolver resolver(executor);
  beast::error_code ec;
  auto found = co_await resolver.async_resolve(url.host, url.port, with_ec(ec));
  if (ec) co_return Error{ErrorCode::unavailable, fmt::format("{}: cannot resolve '{}': {}", options.url, url.host, ec.message())};
  beast::tcp_stream tcp_stream(executor);
  tcp_stream.expires_after(options.connect_timeout);
  auto connected = co_await tcp_stream.async_connect(found, with_ec(ec));
  if (ec) co_return Error{ErrorCode::unavailable, fmt::format("{}: cannot connect: {}", options.url, ec.message())};
  // The TCP stream's timer goes now: left running under a ws:// link, it would end it when it ran out,
  // idle or not. The websocket's own timeouts (handshake, idle with pings) take over; TLS sets it again below.
  tcp_stream.expires_never();
  tcp_stream.socket().set_option(tcp::no_delay(true), ec);
  set_cloexec(tcp_stream.socket().native_handle());
  const std::string remote = endpoint_text(connected);
  const std::string host_header = url.host + ":" + url.port;

  auto upgrade = [&](auto& ws) -> asio::awaitable<Result<void>> {
    configure(ws, options.limits, false);
    ws.set_option(websocket::stream_base::decorator([headers = options.headers](websocket::request_type& req) {
      req.set(http::field::user_agent, "xcore-node");
      for (const auto& [k, v] : headers) req.set(k, v);
    }));
    websocket::response_type res;
    beast::error_code hec;
    co_await ws.async_handshake(res, host_header, url.target, with_ec(hec));
    if (hec) {
      if (res.result_int() != 0 && res.result_int() != 101) {
        std::string body = res.body();
        while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
        int status = res.result_int();
        ErrorCode code = status == 401 ? ErrorCode::unauthenticated : status == 403 ? ErrorCode::permission_denied
                       : status == 404 ? ErrorCode::not_found : status == 429 ? ErrorCode::resource_exhausted : ErrorCode::unavailable;
        co_return Error{code, fmt::format("{}: the server refused the upgrade ({}): {}", options.url, status, body.empty() ? std::string(res.reason()) : body)};
      }
      co_return Error{ErrorCode::unavailable, fmt::format("{}: WebSocket handshake failed: {}", options.url, hec.message())};
    }
    co_return ok();
  };

  if (!url.tls) {
    websocket::stream<beast::tcp_stream> ws(std::move(tcp_stream));
    auto up = co_await upgrade(ws);
    if (!up) co_return up.error();
    co_return std::shared_ptr<WsEngine::Impl::Tracked>(std::make_shared<Session<beast::tcp_stream>>(std::move(ws), options.limits, remote, engine));
  }

  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  if (!options.ca_file.empty()) {
    ctx->load_verify_file(options.ca_file, ec);
    if (ec) co_return Error{ErrorCode::invalid_argument, fmt::format("ca_file '{}': {}", options.ca_file, ec.message())};
  } else {
    ctx->set_default_verify_paths(ec);
  }
  ctx->set_verify_mode(asio::ssl::verify_peer);
  auto pin_seen = std::make_shared<std::string>();
  auto chain_error = std::make_shared<std::string>();
  const std::string pin = lower(options.pinned_sha256);
  ctx->set_verify_callback([pin, pin_seen, chain_error, host = url.host](bool preverified, asio::ssl::verify_context& vc) {
    X509_STORE_CTX* store = vc.native_handle();
    const int depth = X509_STORE_CTX_get_error_depth(store);
    if (!pin.empty()) {
      // Pinned: only the server's own key counts; the chain above it does not have to reach a CA.
      if (depth != 0) return true;
      *pin_seen = public_key_sha256(X509_STORE_CTX_get_current_cert(store));
      return *pin_seen == pin;
    }
    if (!preverified) {
      *chain_error = X509_verify_cert_error_string(X509_STORE_CTX_get_error(store));
      return false;
    }
    if (depth == 0 && !asio::ssl::host_name_verification(host)(preverified, vc)) {
      *chain_error = fmt::format("the certificate is not for '{}'", host);
      return false;
    }
    return true;
  });
  TlsStream tls(std::move(tcp_stream), *ctx);
  if (!SSL_set_tlsext_host_name(tls.native_handle(), url.host.c_str()))
    co_return Error{ErrorCode::internal, "cannot set the TLS server name"};
  beast::get_lowest_layer(tls).expires_after(options.connect_timeout);
  co_await tls.async_handshake(asio::ssl::stream_base::client, with_ec(ec));
  if (ec) {
    if (!pin.empty() && !pin_seen->empty() && *pin_seen != pin)
      co_return Error{ErrorCode::permission_denied, fmt::format("{}: the server's key does not match the pinned one (it is sha256 {})", options.url, *pin_seen)};
    if (!chain_error->empty())
      co_return Error{ErrorCode::permission_denied, fmt::format("{}: the server's certificate does not verify: {}", options.url, *chain_error)};
    co_return Error{ErrorCode::unavailable, fmt::format("{}: TLS handshake failed: {}", options.url, ec.message())};
  }
  beast::get_lowest_layer(tls).expires_never();
  websocket::stream<TlsStream> ws(std::move(tls));
  auto up = co_await upgrade(ws);
  if (!up) co_return up.error();
  co_return std::shared_ptr<WsEngine::Impl::Tracked>(std::make_shared<Session<TlsStream>>(std::move(ws), options.limits, remote, engine, ctx));
}

}  // namespace

// ---- the engine ----------------------------------------------------------------------------------------

WsEngine::WsEngine(unsigned threads, std::string thread_name) : impl_(std::make_shared<Impl>()) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i) {
    impl_->threads.emplace_back([impl = impl_.get()] { impl->ioc.run(); });
    name_thread(impl_->threads.back(), thread_name);
  }
}

WsEngine::~WsEngine() {
  impl_->stopping.store(true);
  asio::post(impl_->acceptor_strand, [impl = impl_.get()] {
    beast::error_code ignored;
    if (impl->acceptor) impl->acceptor->close(ignored);
  });
  std::vector<std::shared_ptr<Impl::Tracked>> live;
  {
    std::lock_guard lock(impl_->links_mutex);
    for (auto& w : impl_->links)
      if (auto l = w.lock()) live.push_back(std::move(l));
    impl_->links.clear();
  }
  for (auto& l : live) l->close("the host is shutting down");
  // A peer gets a moment to answer the closing handshake; then every socket is closed under it.
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
  while (impl_->open.load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  for (auto& l : live) l->hard_close();
  live.clear();
  impl_->work.reset();
  // Every operation completes once its socket is closed; a straggler (a timer) is stopped after a while.
  const auto hard_until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!impl_->ioc.stopped() && std::chrono::steady_clock::now() < hard_until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  impl_->ioc.stop();
  for (auto& t : impl_->threads) t.join();
}

Result<std::shared_ptr<WsLink>> WsEngine::dial(const WsDialOptions& options) {
  XCORE_ASSIGN_OR_RETURN(auto url, parse_ws_url(options.url));
  using Dialled = Result<std::shared_ptr<Impl::Tracked>>;
  auto promise = std::make_shared<std::promise<Dialled>>();
  auto future = promise->get_future();
  asio::co_spawn(
      asio::make_strand(impl_->ioc),
      [impl = impl_, options, url, promise]() -> asio::awaitable<void> { promise->set_value(co_await dial_steps(impl, options, url)); },
      [promise](std::exception_ptr e) {
        if (e) promise->set_value(Error{ErrorCode::internal, "dialling failed unexpectedly"});
      });
  auto result = future.get();
  if (!result) return std::move(result).error();
  impl_->track(*result);
  return std::shared_ptr<WsLink>(std::move(*result));
}

Result<std::uint16_t> WsEngine::listen(const WsListenOptions& options, WsAuthorize authorize) {
  if (impl_->acceptor) return Error{ErrorCode::already_exists, "this engine listens already"};
  if (!authorize) return Error{ErrorCode::invalid_argument, "listen: no authorize function"};
  impl_->listen_options = options;
  impl_->authorize = std::move(authorize);
  beast::error_code ec;
  if (!options.tls_cert_file.empty() || !options.tls_key_file.empty()) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty())
      return Error{ErrorCode::invalid_argument, "wss needs both a certificate file and a key file"};
    auto& ctx = impl_->server_tls.emplace(asio::ssl::context::tls_server);
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                    asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
    ctx.use_certificate_chain_file(options.tls_cert_file, ec);
    if (ec) return Error{ErrorCode::invalid_argument, fmt::format("certificate '{}': {}", options.tls_cert_file, ec.message())};
    ctx.use_private_key_file(options.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) return Error{ErrorCode::invalid_argument, fmt::format("key '{}': {}", options.tls_key_file, ec.message())};
  }
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) return Error{ErrorCode::invalid_argument, fmt::format("listen address '{}': {}", options.address, ec.message())};
  tcp::endpoint endpoint(address, options.port);
  auto& acceptor = impl_->acceptor.emplace(impl_->acceptor_strand);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) set_cloexec(acceptor.native_handle());
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    impl_->acceptor.reset();
    return Error{ErrorCode::unavailable, fmt::format("cannot listen on {}:{}: {}", options.address, options.port, ec.message())};
  }
  const auto port = acceptor.local_endpoint().port();
  asio::co_spawn(impl_->acceptor_strand, accept_loop(impl_), asio::detached);
  return port;
}

std::size_t WsEngine::open_links() const { return impl_->open.load(); }

}  // namespace xcore::inline v1::net
