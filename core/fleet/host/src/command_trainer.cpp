// A command job's trainer: its launch by the host, and trainer-exec, the small parent that
// stands between the host and the user's command (trainer_process.hpp).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>

#include "trainvisor/fleet/trainer_process.hpp"

extern char** environ;

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

bool executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

void write_exit_code(const fs::path& file, int code) {
  const fs::path tmp = JobFolder::staging(file);
  std::ofstream(tmp) << code << "\n";
  std::error_code ec;
  fs::rename(tmp, file, ec);
}

}  // namespace

std::optional<fs::path> find_program(const std::string& program, const fs::path& cwd) {
  if (program.empty()) return std::nullopt;
  if (program.find('/') != std::string::npos) {
    const fs::path p = fs::path(program).is_absolute() ? fs::path(program) : cwd / program;
    return executable_file(p) ? std::optional<fs::path>(p) : std::nullopt;
  }
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  for (std::size_t start = 0; start <= dirs.size();) {
    const std::size_t end = std::min(dirs.find(':', start), dirs.size());
    const std::string dir = dirs.substr(start, end - start);
    const fs::path p = (dir.empty() ? cwd : fs::path(dir)) / program;
    if (executable_file(p)) return p;
    start = end + 1;
  }
  return std::nullopt;
}

TrainerLaunch command_launch(const JobSpec& spec, const CommandSetup& s) {
  if (!spec.command) throw std::invalid_argument("job '" + spec.name + "' runs no command");
  TrainerLaunch l;
  l.argv = {s.executable, "trainer-exec", "--exit-code-file", s.exit_code_file.string(), "--"};
  l.argv.insert(l.argv.end(), spec.command->argv.begin(), spec.command->argv.end());
  l.own_session = true;
  l.log = s.log;
  l.cwd = s.workdir;
  l.unset = kFleetSecretVariables;
  l.env = {"TRAINVISOR_BLOCK=" + s.block,
           "TRAINVISOR_JOB_ID=" + spec.id,
           "TRAINVISOR_SEED=" + std::to_string(spec.seed),
           "TRAINVISOR_OUT_DIR=" + s.out_dir.string(),
           "TRAINVISOR_ATTEMPT=" + std::to_string(s.lease_attempt),
           "TRAINVISOR_LEASE_DIGEST=" + s.lease_digest};
  if (s.orphan_after) {
    l.env.push_back("TRAINVISOR_ORPHAN_AFTER_S=" +
                    std::to_string(static_cast<double>(s.orphan_after->count()) / 1000));
  }
  if (!s.python_path.empty()) {
    const char* old = std::getenv("PYTHONPATH");
    l.env.push_back("PYTHONPATH=" + s.python_path + (old && *old ? ":" + std::string(old) : ""));
  }
  return l;
}

int run_trainer_command(const fs::path& exit_code_file, const std::vector<std::string>& argv) {
  if (argv.empty()) {
    std::fprintf(stderr, "trainer-exec: no command given\n");
    write_exit_code(exit_code_file, 2);
    return 2;
  }
  // The signals the host sends are taken by sigwait below and passed on; the child starts with
  // none blocked and the default dispositions.
  sigset_t forwarded;
  sigemptyset(&forwarded);
  for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
    sigaddset(&forwarded, sig);
  sigprocmask(SIG_BLOCK, &forwarded, nullptr);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &forwarded);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args)
    cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t child = -1;
  const int rc = ::posix_spawnp(&child, cargv[0], nullptr, &attr, cargv.data(), environ);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    std::string where;
    if (argv[0].find('/') == std::string::npos) {
      const char* path = std::getenv("PATH");
      where = std::string(" (searched PATH=") + (path ? path : "") + ")";
    }
    std::fprintf(stderr, "trainer-exec: cannot start the trainer command '%s': %s%s\n",
                 argv[0].c_str(), std::strerror(rc), where.c_str());
    write_exit_code(exit_code_file, 2);
    return 2;
  }
  // The child is reaped on SIGCHLD, and at least every 200 ms whatever arrives: a SIGCHLD lost
  // to a runtime that intercepts signals (a sanitizer's) must not leave the job running forever.
  const timespec tick{0, 200'000'000};
  while (true) {
    const int sig = sigtimedwait(&forwarded, nullptr, &tick);
    if (sig > 0 && sig != SIGCHLD) {
      ::kill(child, sig);
      continue;
    }
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) != child) continue;
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    write_exit_code(exit_code_file, code);
    return code;
  }
}

}  // namespace tv::fleet
