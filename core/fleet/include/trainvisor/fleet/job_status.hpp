// A job's status and why a holder gives a job back: the names the queue stores and the API
// carries ("pending", "trainer_failure", ...). One definition for the queue, the coordinator and
// every client.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace tv::fleet {

// kStopped: the trainer ended early because training/control/early_stop was set (by a policy
// such as divergence or early stopping, or by a human); its bundle is delivered like a
// completed job's, and the queue keeps who stopped it and why.
enum class JobStatus { kPending, kClaimed, kRunning, kCompleted, kStopped, kFailed, kCancelled };

// True for the statuses a job ends in (completed, stopped, failed, cancelled): only a requeue
// makes such a job run again.
constexpr bool is_finished(JobStatus status) {
  return status == JobStatus::kCompleted || status == JobStatus::kStopped ||
         status == JobStatus::kFailed || status == JobStatus::kCancelled;
}

// Why a holder gives a job back. Only kTrainerFailure counts toward max_attempts.
enum class FailureClass { kTrainerFailure, kHostLost, kCancelled };

inline constexpr std::array<std::pair<JobStatus, std::string_view>, 7> kJobStatusNames{{
    {JobStatus::kPending, "pending"},
    {JobStatus::kClaimed, "claimed"},
    {JobStatus::kRunning, "running"},
    {JobStatus::kCompleted, "completed"},
    {JobStatus::kStopped, "stopped"},
    {JobStatus::kFailed, "failed"},
    {JobStatus::kCancelled, "cancelled"},
}};

inline constexpr std::array<std::pair<FailureClass, std::string_view>, 3> kFailureClassNames{{
    {FailureClass::kTrainerFailure, "trainer_failure"},
    {FailureClass::kHostLost, "host_lost"},
    {FailureClass::kCancelled, "cancelled"},
}};

// The value named `name` in a table of names, or nullopt.
template <typename E, std::size_t N>
constexpr std::optional<E> value_named(const std::array<std::pair<E, std::string_view>, N>& table,
                                       std::string_view name) {
  for (const auto& [v, n] : table)
    if (n == name) return v;
  return std::nullopt;
}

// The name of `value` in a table of names (every enumerator has one).
template <typename E, std::size_t N>
constexpr std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& table,
                                   E value) {
  for (const auto& [v, n] : table)
    if (v == value) return n;
  return "?";
}

// "a, b or c": the names of a table, for messages that list what would have been accepted.
template <typename E, std::size_t N>
std::string names_of(const std::array<std::pair<E, std::string_view>, N>& table) {
  std::string out;
  for (std::size_t i = 0; i < N; ++i) {
    if (i > 0) out += i + 1 == N ? " or " : ", ";
    out += table[i].second;
  }
  return out;
}

inline std::string_view to_string(JobStatus status) {
  return name_of(kJobStatusNames, status);
}
inline std::string_view to_string(FailureClass failure) {
  return name_of(kFailureClassNames, failure);
}

}  // namespace tv::fleet
