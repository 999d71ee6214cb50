// ServiceNotifier and WatchdogPinger against a real Unix datagram socket standing in for systemd:
// the messages and their framing, abstract names, the environment contract (read, validated,
// cleared) and the watchdog's pace and clean stop.
#include "service_notify.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tv::cli {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A bound datagram socket: what systemd listens on. `name` starting with '@' is abstract.
class Listener {
 public:
  explicit Listener(const std::string& name) : name_(name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    socklen_t len = offsetof(sockaddr_un, sun_path) + name.size() + 1;
    if (name[0] == '@') {
      a.sun_path[0] = '\0';
      len -= 1;
    }
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0)
      throw std::runtime_error("bind " + name + ": " + std::strerror(errno));
  }
  ~Listener() { ::close(fd_); }
  const std::string& name() const { return name_; }

  // The next datagram, or nullopt when none arrives within `timeout`.
  std::optional<std::string> next(milliseconds timeout = milliseconds(2000)) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<std::size_t>(n));
  }

 private:
  std::string name_;
  int fd_ = -1;
};

class ServiceNotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tv-notify-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    for (const char* v : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
      ::unsetenv(v);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string socket_path() const { return (dir_ / "notify").string(); }

  fs::path dir_;
};

TEST_F(ServiceNotifyTest, SendsEachMessageAsOneDatagram) {
  Listener l(socket_path());
  const ServiceNotifier n(l.name(), {});
  EXPECT_EQ(n.ready("serving http://127.0.0.1:1"), "");
  EXPECT_EQ(l.next(), "READY=1\nSTATUS=serving http://127.0.0.1:1");
  EXPECT_EQ(n.ready(""), "");
  EXPECT_EQ(l.next(), "READY=1");
  EXPECT_EQ(n.status("reloading"), "");
  EXPECT_EQ(l.next(), "STATUS=reloading");
  EXPECT_EQ(n.stopping(), "");
  EXPECT_EQ(l.next(), "STOPPING=1");
  EXPECT_EQ(n.watchdog(), "");
  EXPECT_EQ(l.next(), "WATCHDOG=1");
}

TEST_F(ServiceNotifyTest, ReloadingCarriesTheMonotonicClock) {
  Listener l(socket_path());
  const ServiceNotifier n(l.name(), {});
  timespec before{};
  ::clock_gettime(CLOCK_MONOTONIC, &before);
  ASSERT_EQ(n.reloading(), "");
  const auto m = l.next();
  ASSERT_TRUE(m);
  const std::string prefix = "RELOADING=1\nMONOTONIC_USEC=";
  ASSERT_EQ(m->substr(0, prefix.size()), prefix) << *m;
  const std::uint64_t usec = std::stoull(m->substr(prefix.size()));
  const std::uint64_t before_usec = static_cast<std::uint64_t>(before.tv_sec) * 1000000u +
                                    static_cast<std::uint64_t>(before.tv_nsec) / 1000u;
  EXPECT_GE(usec, before_usec);
  EXPECT_LT(usec, before_usec + 5'000'000u);
}

TEST_F(ServiceNotifyTest, AbstractSocketName) {
  Listener l("@tv-notify-test-" + std::to_string(::getpid()));
  const ServiceNotifier n(l.name(), {});
  EXPECT_EQ(n.stopping(), "");
  EXPECT_EQ(l.next(), "STOPPING=1");
}

TEST_F(ServiceNotifyTest, DisabledWithoutNotifySocket) {
  const ServiceNotifier n = ServiceNotifier::take_from_environment();
  EXPECT_FALSE(n.enabled());
  EXPECT_EQ(n.ready("x"), "");
  EXPECT_EQ(n.watchdog_period().count(), 0);
}

TEST_F(ServiceNotifyTest, TakesAndClearsTheEnvironment) {
  Listener l(socket_path());
  ::setenv("NOTIFY_SOCKET", l.name().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
  const ServiceNotifier n = ServiceNotifier::take_from_environment();
  EXPECT_EQ(n.socket(), l.name());
  EXPECT_EQ(n.watchdog_period(), std::chrono::seconds(3));
  // Children the daemon starts must not speak for the service.
  EXPECT_EQ(std::getenv("NOTIFY_SOCKET"), nullptr);
  EXPECT_EQ(std::getenv("WATCHDOG_USEC"), nullptr);
  EXPECT_EQ(std::getenv("WATCHDOG_PID"), nullptr);
  EXPECT_EQ(n.ready(""), "");
  EXPECT_EQ(l.next(), "READY=1");
}

TEST_F(ServiceNotifyTest, AnotherProcessesWatchdogIsNotOurs) {
  ::setenv("NOTIFY_SOCKET", socket_path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "1000000", 1);
  ::setenv("WATCHDOG_PID", std::to_string(::getpid() + 1).c_str(), 1);
  EXPECT_EQ(ServiceNotifier::take_from_environment().watchdog_period().count(), 0);
}

TEST_F(ServiceNotifyTest, RefusesMalformedVariablesNamingThem) {
  auto refusal = [] {
    try {
      (void)ServiceNotifier::take_from_environment();
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  ::setenv("NOTIFY_SOCKET", "relative/path", 1);
  EXPECT_NE(refusal().find("NOTIFY_SOCKET 'relative/path' is neither"), std::string::npos);
  ::setenv("NOTIFY_SOCKET", socket_path().c_str(), 1);
  ::setenv("WATCHDOG_USEC", "30s", 1);
  EXPECT_NE(refusal().find("WATCHDOG_USEC='30s' is not a positive whole number"),
            std::string::npos);
  ::setenv("WATCHDOG_USEC", "0", 1);
  EXPECT_NE(refusal().find("WATCHDOG_USEC='0'"), std::string::npos);
  ::setenv("NOTIFY_SOCKET", ("/" + std::string(200, 'x')).c_str(), 1);
  ::unsetenv("WATCHDOG_USEC");
  EXPECT_NE(refusal().find("is longer than"), std::string::npos);
}

TEST_F(ServiceNotifyTest, ASendNobodyHearsIsReportedNotThrown) {
  const ServiceNotifier n(socket_path(), {});  // nothing bound there
  const std::string why = n.ready("");
  EXPECT_NE(why.find("cannot notify " + socket_path()), std::string::npos) << why;
}

TEST_F(ServiceNotifyTest, WatchdogPingsAtHalfThePeriodAndStops) {
  Listener l(socket_path());
  const ServiceNotifier n(l.name(), milliseconds(400));
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::chrono::steady_clock::duration> at;
  {
    WatchdogPinger pinger(n);
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(l.next(), "WATCHDOG=1");
      at.push_back(std::chrono::steady_clock::now() - start);
    }
    pinger.stop();
  }
  // The first at once, then one every 200 ms: four within 3 periods even on a loaded machine,
  // and not faster than the pace asked for.
  EXPECT_GE(at[3], milliseconds(550));
  EXPECT_LT(at[3], milliseconds(1200));
  // Stopped: nothing more arrives.
  EXPECT_EQ(l.next(milliseconds(500)), std::nullopt);
}

TEST_F(ServiceNotifyTest, NoWatchdogNoThread) {
  Listener l(socket_path());
  const ServiceNotifier n(l.name(), {});
  WatchdogPinger pinger(n);
  EXPECT_EQ(l.next(milliseconds(300)), std::nullopt);
}

}  // namespace
}  // namespace tv::cli
