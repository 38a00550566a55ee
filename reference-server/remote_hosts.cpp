// Where a tenant's `url:` plugins (and the model providers it registers) may connect. A plugin registered over the API names a URL of its
// admin's choosing, and the server would connect there from inside the operator's network: the host must
// match remote_plugins.allowed_hosts, and every address it resolves to must be a public one unless
// remote_plugins.allow_private says otherwise (loopback, private, link-local, metadata services...). The
// address checked is the one connected to, so a second DNS answer cannot point elsewhere. Plugins the
// operator put in the plugin folders are the operator's own choice and are not checked.
#include "server_impl.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <array>
#include <cstring>

#include "core/glob.hpp"

namespace xcore::server {

namespace {

// Not reachable from the internet, or not a unicast host: loopback, RFC 1918, CGNAT, link-local (cloud
// metadata services live there), multicast, reserved, and IPv6's equivalents.
bool private_v4(const std::uint8_t a[4]) {
  return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 100 && (a[1] & 0xC0) == 64) || (a[0] == 169 && a[1] == 254) ||
         (a[0] == 172 && (a[1] & 0xF0) == 16) || (a[0] == 192 && a[1] == 168) || (a[0] == 192 && a[1] == 0 && a[2] == 0) || a[0] >= 224;
}
bool private_v6(const std::uint8_t a[16]) {
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
  if (std::memcmp(a, mapped, 12) == 0) return private_v4(a + 12);
  bool zero_prefix = true;
  for (int i = 0; i < 15; ++i) zero_prefix = zero_prefix && a[i] == 0;
  if (zero_prefix && (a[15] == 0 || a[15] == 1)) return true;  // :: and ::1
  return (a[0] & 0xFE) == 0xFC || (a[0] == 0xFE && (a[1] & 0xC0) == 0x80) || a[0] == 0xFF;  // ULA, link-local, multicast
}

}  // namespace

bool private_address(std::string_view address) {
  std::array<std::uint8_t, 16> bytes{};
  const std::string text(address);
  if (::inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) return private_v4(bytes.data());
  if (::inet_pton(AF_INET6, text.c_str(), bytes.data()) == 1) return private_v6(bytes.data());
  return true;  // not an address: never treated as a public one
}

Result<std::string> Server::Impl::remote_address(const std::string& tenant, const PluginManifest& m, std::string_view host) const {
  if (m.dir().parent_path() != dynamic_dir(tenant)) return std::string();  // the operator's own plugin
  return outbound_address(host, "plugins registered over the API");
}

Result<std::string> Server::Impl::outbound_address(std::string_view host, std::string_view whose) const {
  if (config.remote_allowed_hosts.empty())
    return Error{ErrorCode::permission_denied,
                 fmt::format("'{}' may not be reached: no host is allowed for {} (the setting remote_plugins.allowed_hosts)", host, whose)};
  const bool listed = std::any_of(config.remote_allowed_hosts.begin(), config.remote_allowed_hosts.end(),
                                  [&](const std::string& pattern) { return glob_match(pattern, host); });
  if (!listed)
    return Error{ErrorCode::permission_denied, fmt::format("'{}' is not among the hosts {} may reach ({})", host, whose, fmt::join(config.remote_allowed_hosts, ", "))};
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string name(host);
  if (int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &found); rc != 0)
    return Error{ErrorCode::unavailable, fmt::format("cannot resolve '{}': {}", host, ::gai_strerror(rc))};
  std::vector<std::string> addresses;
  for (auto* a = found; a; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = a->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                              : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    if (::inet_ntop(a->ai_family, raw, text, sizeof text)) addresses.emplace_back(text);
  }
  ::freeaddrinfo(found);
  if (addresses.empty()) return Error{ErrorCode::unavailable, fmt::format("'{}' resolves to no address", host)};
  // Every address is checked, not only the one used: a name that also points inward is refused.
  if (!config.remote_allow_private)
    for (const auto& a : addresses)
      if (private_address(a))
        return Error{ErrorCode::permission_denied,
                     fmt::format("'{}' resolves to {}, a loopback, private or link-local address: {} reach public "
                                 "addresses only (the setting remote_plugins.allow_private)", host, a, whose)};
  return addresses.front();
}

}  // namespace xcore::server
