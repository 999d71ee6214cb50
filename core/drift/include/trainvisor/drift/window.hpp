// A window of samples for the two-sample drift tests: `rows` samples of `dims` float features,
// row-major, not owned. check_window() refuses what no test can use, naming the parameter, so
// that every entry point of tv_drift reports bad input the same way.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>

namespace tv::drift {

struct Window {
  std::span<const float> values;  // rows * dims
  std::size_t rows = 0;
  std::size_t dims = 0;
};

// Throws std::invalid_argument starting with `name`: no rows, no features, a value count that
// is not rows * dims, or a value that is not finite (naming its row and feature).
void check_window(const Window& window, std::string_view name);

// Throws std::invalid_argument naming `current` when its feature count differs from the
// reference's.
void check_same_dims(std::size_t reference_dims, const Window& current);

}  // namespace tv::drift
