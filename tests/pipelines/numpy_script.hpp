// Runs a Python script under the python3 that has numpy (TV_NUMPY_PYTHON) and returns the bytes
// it wrote to the path given as its first argument: NumPy's own output, to check the codec
// against. The script also gets `np`, `io` and `out` (that path) defined.
#pragma once

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "temp_dir.hpp"

namespace tv::fleet::test {

inline std::string read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::string run_numpy(const std::string& body, const std::string& arg = "") {
  TempDir dir;
  const std::string script = dir.file("script.py");
  const std::string out = dir.file("out.bin");
  std::ofstream(script) << "import io, sys\nimport numpy as np\nout = sys.argv[1]\n"
                        << "arg = sys.argv[2] if len(sys.argv) > 2 else ''\n"
                        << body << "\n";
  const std::string command = std::string(TV_NUMPY_PYTHON) + " " + script + " " + out + " '" + arg +
                              "' 2>" + dir.file("err.txt");
  if (std::system(command.c_str()) != 0) {
    throw std::runtime_error("python failed: " + read_whole_file(dir.file("err.txt")));
  }
  return read_whole_file(out);
}

}  // namespace tv::fleet::test
