#include "secret_flags.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace tv::cli {

void add_secret_flags(CLI::App& cmd, SecretFlag& s, const std::string& what) {
  cmd.add_option(s.flag, s.value,
                 what +
                     ". Visible to other users of this machine (ps, /proc/PID/cmdline): "
                     "prefer " +
                     s.flag + "-file or $" + s.env);
  cmd.add_option(s.flag + "-file", s.file,
                 what + " from a file (its first line; keep it mode 0600), or $" + s.env);
}

std::string secret_of(const SecretFlag& s, bool warn_visible) {
  if (!s.value.empty() && !s.file.empty())
    throw std::invalid_argument("give " + s.flag + " or " + s.flag + "-file, not both");
  if (!s.value.empty()) {
    if (warn_visible) {
      std::fprintf(stderr,
                   "warning: %s on the command line is visible to other users of this machine "
                   "(ps, /proc/PID/cmdline); prefer %s-file or $%s\n",
                   s.flag.c_str(), s.flag.c_str(), s.env.c_str());
    }
    return s.value;
  }
  if (!s.file.empty()) {
    std::ifstream in(s.file);
    if (!in) throw std::invalid_argument(s.flag + "-file " + s.file + ": cannot be read");
    std::string line;
    std::getline(in, line);
    line.erase(line.find_last_not_of(" \t\r\n") + 1);
    line.erase(0, line.find_first_not_of(" \t"));
    if (line.empty()) throw std::invalid_argument(s.flag + "-file " + s.file + ": is empty");
    return line;
  }
  const char* v = std::getenv(s.env.c_str());
  return v ? v : "";
}

}  // namespace tv::cli
