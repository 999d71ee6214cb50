// The systemd notification protocol (sd_notify(3)) without libsystemd: datagrams of
// "KEY=VALUE\n" lines to the Unix socket named by $NOTIFY_SOCKET, for units with Type=notify or
// Type=notify-reload and WatchdogSec=.
//
// - ServiceNotifier::take_from_environment() reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID
//   and removes them from the environment, so that the trainers a host starts (the same binary)
//   never speak for the service. Without NOTIFY_SOCKET every call is a no-op: the daemon runs the
//   same in a terminal.
// - Sends report failure as a value (a message naming the socket and the reason): a service
//   manager that cannot be told must not stop the daemon, the caller logs it.
// - WatchdogPinger sends WATCHDOG=1 at half the period systemd gave, from its own thread, which
//   its destructor (or stop()) ends and joins.
//
// A ServiceNotifier is immutable after construction; send() may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace tv::cli {

class ServiceNotifier {
 public:
  // Disabled: every send is a no-op.
  ServiceNotifier() = default;
  // `socket`: an absolute path or "@name" for the abstract namespace; empty disables.
  // `watchdog`: the watchdog period, zero when the service has none.
  ServiceNotifier(std::string socket, std::chrono::microseconds watchdog);

  // The notifier the service manager configured through the environment, which it then clears.
  // Throws std::invalid_argument naming the variable when NOTIFY_SOCKET is neither absolute nor
  // abstract, or WATCHDOG_USEC / WATCHDOG_PID is not a positive whole number. A WATCHDOG_PID
  // that is not this process means the watchdog is another process's (no pings from here).
  static ServiceNotifier take_from_environment();

  bool enabled() const { return !socket_.empty(); }
  const std::string& socket() const { return socket_; }
  // Zero when no watchdog is asked for.
  std::chrono::microseconds watchdog_period() const { return watchdog_; }

  // Sends `message` (newline-separated KEY=VALUE lines) as one datagram. Returns "" when sent or
  // disabled, else why it was not sent.
  [[nodiscard]] std::string send(std::string_view message) const;

  // The protocol's messages; each returns what send() returns.
  [[nodiscard]] std::string ready(std::string_view status) const;  // READY=1 (+ STATUS)
  [[nodiscard]] std::string status(std::string_view status) const;
  [[nodiscard]] std::string stopping() const;
  // RELOADING=1 with MONOTONIC_USEC (CLOCK_MONOTONIC), which Type=notify-reload needs to match
  // the reload it asked for (systemd 253+; earlier versions ignore it). READY=1 ends the reload.
  [[nodiscard]] std::string reloading() const;
  [[nodiscard]] std::string watchdog() const;

 private:
  std::string socket_;
  std::chrono::microseconds watchdog_{0};
};

// Writes "WHO: WHY" to stderr when `why` (a send's answer) is not empty.
void log_notify_failure(std::string_view who, const std::string& why);

class WatchdogPinger {
 public:
  // Starts pinging at half of notifier.watchdog_period(); does nothing when the notifier is
  // disabled or has no watchdog. A failed ping is written to stderr once per distinct reason.
  // The thread inherits the caller's signal mask: construct it after the SignalWatch.
  explicit WatchdogPinger(const ServiceNotifier& notifier);
  ~WatchdogPinger();  // stop()
  WatchdogPinger(const WatchdogPinger&) = delete;
  WatchdogPinger& operator=(const WatchdogPinger&) = delete;

  // Ends and joins the thread; idempotent.
  void stop();

 private:
  void run(std::chrono::microseconds every);

  const ServiceNotifier& notifier_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace tv::cli
