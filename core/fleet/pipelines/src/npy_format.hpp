// The .npy container as NumPy's format module defines it (numpy/lib/format.py): the magic
// "\x93NUMPY", a version, a little-endian header length (2 bytes in 1.0, 4 in 2.0 and 3.0), and
// a header that is a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)},
// padded with spaces and ended by a newline; the array's bytes follow. Private to the stream
// codec, which checks what the dtype and shape mean for each array.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tv::fleet::pipelines::npy {

struct Header {
  std::string descr;  // e.g. "<f4"
  bool fortran_order = false;
  std::vector<std::int64_t> shape;  // each dimension in [0, 2^62]
};

// Reads the header of the array at the front of `in` and advances `in` past it, to the array's
// data. `array` names the array in errors ("features"). Throws BatchError for a missing magic, an
// unknown version, a header cut short or one that is not the dict above (an unknown or repeated
// key, a structured dtype, a shape that is not a tuple of integers).
Header read_header(std::string_view& in, std::string_view array);

// The canonical header of a C-order array at format 1.0, padded as NumPy 1.24's np.save pads it
// (room to grow the first axis to 21 digits, then spaces to a multiple of 64 bytes and '\n').
std::string write_header(std::string_view descr, const std::vector<std::int64_t>& shape);

// "(3, 784)", "(3,)": a shape as Python writes a tuple, for headers and messages.
std::string shape_text(const std::vector<std::int64_t>& shape);

}  // namespace tv::fleet::pipelines::npy
