// xcore-server: the HTTP layer a host builds on libxcore. One Manager per tenant (plugins, configs and tools
// never cross tenants), SQLite for everything that outlives the process, Botan for passwords, tokens and
// secrets. cpp-httplib, SQLiteCpp and Botan stay in the .cpp files.
#pragma once

#include <memory>

#include <xcore/error.hpp>

#include "config.hpp"

namespace xcore::server {

class Server {
 public:
  static Result<std::unique_ptr<Server>> create(ServerConfig config);
  ~Server();  // stops, unloads every plugin (their on_unload runs), closes the database
  int port() const;
  // Serves until stop() (from any thread, or a signal handler's thread).
  Result<void> run();
  void stop();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xcore::server
