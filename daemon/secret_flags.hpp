// A secret given on the command line three ways: --NAME VALUE (visible to every user of the
// machine in `ps` and /proc/PID/cmdline, so kept for convenience and warned about),
// --NAME-file FILE (its first line) or an environment variable. One rule for every token and
// credential the commands take.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <utility>

namespace tv::cli {

struct SecretFlag {
  SecretFlag(std::string flag_name, std::string env_name)
      : flag(std::move(flag_name)), env(std::move(env_name)) {}
  std::string flag;  // "--worker-token"
  std::string env;   // "TRAINVISOR_WORKER_TOKEN"
  std::string value;
  std::string file;
};

// Adds s.flag and s.flag-file to `cmd`, bound to `s` (which must outlive the parse; several
// commands may share one); `what` says what the secret is ("Worker token").
void add_secret_flags(CLI::App& cmd, SecretFlag& s, const std::string& what);

// The secret: the value flag's, else the file's first line, else the environment's, else "".
// Throws std::invalid_argument for both a value and a file, or a file that cannot be read or
// is empty. With `warn_visible`, a value given as a flag is warned about on stderr (a daemon's
// command line stays visible for as long as it runs).
std::string secret_of(const SecretFlag& s, bool warn_visible);

}  // namespace tv::cli
