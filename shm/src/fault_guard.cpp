#include "fault_guard.hpp"

#include <signal.h>
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "trainvisor/shm/value.hpp"

namespace tv::shm {
namespace {

// begin: 0 free, 1 being registered, else the mapping's first byte. A slot is read by the
// handler without a lock: begin is loaded before and after end, so a slot being reused is not
// mistaken for the faulting mapping (whose own slot cannot change while it is being accessed).
struct Slot {
  std::atomic<std::uintptr_t> begin{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<int> prot{PROT_READ};
  std::atomic<bool> faulted{false};
};

constexpr std::uintptr_t kReserved = 1;

Slot slots[FaultGuard::kCapacity];
struct sigaction previous;
std::once_flag installed;

// Hands a fault that is not a block's to whoever handled SIGBUS before.
void chain(int sig, siginfo_t* info, void* context) {
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(sig, info, context);
    return;
  }
  if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(sig);
    return;
  }
  // The default action: with it restored, a fault kills the process when the access is retried;
  // a SIGBUS another process sent is raised again.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(sig, &dfl, nullptr);
  if (info->si_code <= 0) ::raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  for (Slot& s : slots) {
    const std::uintptr_t begin = s.begin.load(std::memory_order_acquire);
    if (begin <= kReserved || addr < begin) continue;
    const std::uintptr_t end = s.end.load(std::memory_order_acquire);
    if (addr >= end || s.begin.load(std::memory_order_acquire) != begin) continue;
    void* fresh =
        ::mmap(reinterpret_cast<void*>(begin), end - begin, s.prot.load(std::memory_order_relaxed),
               MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fresh == MAP_FAILED) break;
    s.faulted.store(true, std::memory_order_release);
    return;  // the access is retried, on the zero pages
  }
  chain(sig, info, context);
}

void install() {
  struct sigaction sa = {};
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGBUS, &sa, &previous);
}

}  // namespace

FaultGuard::FaultGuard(void* base, std::size_t bytes, bool writable) {
  std::call_once(installed, install);
  for (std::size_t i = 0; i < kCapacity; ++i) {
    std::uintptr_t expected = 0;
    if (!slots[i].begin.compare_exchange_strong(expected, kReserved, std::memory_order_acq_rel))
      continue;
    const auto b = reinterpret_cast<std::uintptr_t>(base);
    slots[i].faulted.store(false, std::memory_order_relaxed);
    slots[i].prot.store(writable ? PROT_READ | PROT_WRITE : PROT_READ, std::memory_order_relaxed);
    slots[i].end.store(b + bytes, std::memory_order_release);
    slots[i].begin.store(b, std::memory_order_release);
    slot_ = i;
    return;
  }
  throw ShmError("cannot map another shared-memory block: this process has " +
                 std::to_string(kCapacity) + " mapped already");
}

FaultGuard::~FaultGuard() {
  slots[slot_].begin.store(kReserved, std::memory_order_release);
  slots[slot_].end.store(0, std::memory_order_release);
  slots[slot_].begin.store(0, std::memory_order_release);
}

bool FaultGuard::faulted() const noexcept {
  return slots[slot_].faulted.load(std::memory_order_acquire);
}

}  // namespace tv::shm
