#include "service_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <utility>

#include "trainvisor/fleet/log.hpp"

namespace tv::cli {
namespace {

// A positive whole number from environment variable `name`; 0 when unset.
std::uint64_t positive_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return 0;
  const std::string text = v;
  std::uint64_t n = 0;
  const bool digits = !text.empty() && text.size() <= 19 &&
                      text.find_first_not_of("0123456789") == std::string::npos;
  if (digits) n = std::stoull(text);
  if (n == 0) {
    throw std::invalid_argument(std::string(name) + "='" + text +
                                "' is not a positive whole number");
  }
  return n;
}

// The socket address of `socket` ("/path" or "@abstract") and its length.
std::pair<sockaddr_un, socklen_t> address_of(const std::string& socket) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (socket.size() >= sizeof(a.sun_path)) {
    throw std::invalid_argument("NOTIFY_SOCKET '" + socket + "' is longer than " +
                                std::to_string(sizeof(a.sun_path) - 1) + " bytes");
  }
  std::memcpy(a.sun_path, socket.data(), socket.size());
  // An abstract name is not NUL-terminated: its length is the address's length.
  if (socket[0] == '@') a.sun_path[0] = '\0';
  const auto len = offsetof(sockaddr_un, sun_path) + socket.size() + (socket[0] == '@' ? 0 : 1);
  return {a, static_cast<socklen_t>(len)};
}

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

ServiceNotifier::ServiceNotifier(std::string socket, std::chrono::microseconds watchdog)
    : socket_(std::move(socket)), watchdog_(watchdog) {
  if (!socket_.empty() && socket_[0] != '/' && socket_[0] != '@') {
    throw std::invalid_argument("NOTIFY_SOCKET '" + socket_ +
                                "' is neither an absolute path nor an abstract name (@NAME)");
  }
  if (!socket_.empty()) address_of(socket_);  // its length, checked once here
}

ServiceNotifier ServiceNotifier::take_from_environment() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  std::uint64_t usec = positive_env("WATCHDOG_USEC");
  const std::uint64_t pid = positive_env("WATCHDOG_PID");
  // The manager names the process it watches; a process that inherited the variables from it
  // (one started by the service's main process) must not ping on its behalf.
  if (pid != 0 && pid != static_cast<std::uint64_t>(::getpid())) usec = 0;
  ServiceNotifier n(socket ? socket : "", std::chrono::microseconds(usec));
  for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
    ::unsetenv(name);
  return n;
}

std::string ServiceNotifier::send(std::string_view message) const {
  if (socket_.empty()) return "";
  const auto [address, length] = address_of(socket_);
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("cannot make a datagram socket: ") + std::strerror(errno);
  const ssize_t n = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                             reinterpret_cast<const sockaddr*>(&address), length);
  const int err = errno;
  ::close(fd);
  if (n < 0) return "cannot notify " + socket_ + ": " + std::strerror(err);
  if (static_cast<std::size_t>(n) != message.size()) return "short send to " + socket_;
  return "";
}

std::string ServiceNotifier::ready(std::string_view status) const {
  return send(status.empty() ? std::string("READY=1") : "READY=1\nSTATUS=" + std::string(status));
}

std::string ServiceNotifier::status(std::string_view status) const {
  return send("STATUS=" + std::string(status));
}

std::string ServiceNotifier::stopping() const {
  return send("STOPPING=1");
}

std::string ServiceNotifier::reloading() const {
  return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec()));
}

std::string ServiceNotifier::watchdog() const {
  return send("WATCHDOG=1");
}

void log_notify_failure(std::string_view who, const std::string& why) {
  if (!why.empty()) fleet::log::emit({fleet::log::Level::kWarn, std::string(who), why, "", {}});
}

WatchdogPinger::WatchdogPinger(const ServiceNotifier& notifier) : notifier_(notifier) {
  if (!notifier.enabled() || notifier.watchdog_period().count() == 0) return;
  // Half the period: one late ping (a loaded machine) still lands before the deadline.
  thread_ = std::thread([this, every = notifier.watchdog_period() / 2] { run(every); });
}

WatchdogPinger::~WatchdogPinger() {
  stop();
}

void WatchdogPinger::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WatchdogPinger::run(std::chrono::microseconds every) {
  std::string last_error;
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    const std::string why = notifier_.watchdog();
    if (!why.empty() && why != last_error) std::fprintf(stderr, "watchdog: %s\n", why.c_str());
    last_error = why;
    lock.lock();
    wake_.wait_for(lock, every, [this] { return stopping_; });
  }
}

}  // namespace tv::cli
