// xcore-server --listen 127.0.0.1:8080 --data-dir ./var [--plugins DIR]... [--config FILE]
#include <csignal>
#include <cstdio>
#include <thread>

#include "server.hpp"

int main(int argc, char** argv) {
  auto config = xcore::server::load_config(argc, argv);
  if (!config) {
    if (config.error().message.empty()) return 0;  // --help
    std::fprintf(stderr, "xcore-server: %s\n", config.error().message.c_str());
    return 2;
  }
  // Signals are taken by a thread of our own, so the stop runs outside any signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  auto server = xcore::server::Server::create(std::move(*config));
  if (!server) {
    std::fprintf(stderr, "xcore-server: %s\n", server.error().message.c_str());
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    (*server)->stop();
  });
  auto r = (*server)->run();
  if (!r) std::fprintf(stderr, "xcore-server: %s\n", r.error().message.c_str());
  // Wake the waiter if run() ended for another reason.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  server->reset();  // unloads plugins, closes the database
  std::fprintf(stderr, "xcore-server: stopped\n");
  return r ? 0 : 1;
}
