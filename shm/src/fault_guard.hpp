// Contains a fault on a block's memory to that block. Internal to shm/.
//
// Any process of the same user can truncate a block's object; the next access to a page past
// its new end raises SIGBUS in every process that has it mapped. A FaultGuard registers one
// mapping with a process-wide SIGBUS handler (installed once, chaining to the one it replaced
// for any other fault): a fault inside a registered mapping replaces that whole mapping with
// private zero pages, marks it faulted and returns, so the access completes (reading zeros,
// or writing into memory no one else sees) and the thread carries on. Its owner then finds the
// block broken (faulted(), or its size) and gives up on that block alone.
//
// The handler calls mmap, a plain system call on Linux; it takes no lock and allocates nothing.
// Thread-safety: guards may be made and destroyed from any thread.
#pragma once

#include <cstddef>

namespace tv::shm {

class FaultGuard {
 public:
  // Registers [base, base + bytes). Throws ShmError when kCapacity mappings are registered.
  FaultGuard(void* base, std::size_t bytes, bool writable);
  ~FaultGuard();
  FaultGuard(const FaultGuard&) = delete;
  FaultGuard& operator=(const FaultGuard&) = delete;

  // True once an access to the mapping faulted (it now holds zero pages of its own).
  bool faulted() const noexcept;

  static constexpr std::size_t kCapacity = 1024;

 private:
  std::size_t slot_;
};

}  // namespace tv::shm
