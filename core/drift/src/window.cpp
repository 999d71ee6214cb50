#include "trainvisor/drift/window.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace tv::drift {

void check_window(const Window& window, std::string_view name) {
  const std::string who(name);
  if (window.rows == 0) throw std::invalid_argument(who + ": the window is empty (no rows)");
  if (window.dims == 0) throw std::invalid_argument(who + ": the rows have no features");
  if (window.values.size() / window.dims != window.rows ||
      window.values.size() % window.dims != 0) {
    throw std::invalid_argument(who + ": " + std::to_string(window.values.size()) +
                                " values are not " + std::to_string(window.rows) + " rows of " +
                                std::to_string(window.dims) + " features");
  }
  for (std::size_t i = 0; i < window.values.size(); ++i) {
    if (!std::isfinite(window.values[i])) {
      throw std::invalid_argument(who + ": row " + std::to_string(i / window.dims) + ", feature " +
                                  std::to_string(i % window.dims) + " is " +
                                  (std::isnan(window.values[i]) ? "NaN" : "infinite"));
    }
  }
}

void check_same_dims(std::size_t reference_dims, const Window& current) {
  if (current.dims != reference_dims) {
    throw std::invalid_argument("current: " + std::to_string(current.dims) +
                                " features per row, the reference has " +
                                std::to_string(reference_dims));
  }
}

}  // namespace tv::drift
