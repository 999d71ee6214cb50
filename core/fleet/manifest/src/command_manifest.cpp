// A command job's trainer, workdir and host_workdir (manifest.hpp): the command checked, its
// shipped working directory packed once per folder.
#include <algorithm>
#include <filesystem>

#include "manifest_parts.hpp"
#include "trainvisor/fleet/folder_archive.hpp"

namespace tv::fleet::manifest_parts {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kMaxArgs = CommandTrainer::kMaxArgs;
constexpr std::size_t kMaxArgBytes = CommandTrainer::kMaxArgBytes;

// Interpreters whose first argument that is not a flag names the script they run.
bool interpreter(const std::string& program) {
  const std::string base = fs::path(program).filename().string();
  return base.rfind("python", 0) == 0 || base == "bash" || base == "sh" || base == "Rscript";
}

// The script of `argv`, when the command names one: argv[0] with a '/', or an interpreter's
// first non-flag argument. "" when the command is a program looked up on the host's PATH.
std::string script_of(const std::vector<std::string>& argv) {
  if (argv[0].find('/') != std::string::npos) return argv[0];
  if (!interpreter(argv[0])) return "";
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (argv[i] == "-m" || argv[i] == "-c") return "";  // a module or inline code: no file
    if (!argv[i].empty() && argv[i][0] != '-') return argv[i];
  }
  return "";
}

std::vector<std::string> parse_argv(Checker& c, const toml::node& n, const std::string& what) {
  std::vector<std::string> argv;
  const toml::array* a = n.as_array();
  if (a == nullptr || a->empty()) {
    c.error(n.source(), what + ": 'trainer' must be a non-empty array of strings (the command)");
    return argv;
  }
  for (const toml::node& e : *a) {
    const auto s = e.value_exact<std::string>();
    if (!s || s->empty() || s->size() > kMaxArgBytes || s->find('\0') != std::string::npos) {
      c.error(e.source(), what +
                              ": each 'trainer' argument must be a non-empty string of at most " +
                              std::to_string(kMaxArgBytes) + " bytes");
      return {};
    }
    argv.push_back(*s);
  }
  if (argv.size() > kMaxArgs) {
    c.error(n.source(), what + ": 'trainer' has " + std::to_string(argv.size()) +
                            " arguments (at most " + std::to_string(kMaxArgs) + ")");
    return {};
  }
  return argv;
}

// The folder `workdir` names, packed into `shipped` unless an earlier job shipped it; its digest.
std::string ship(Checker& c, const toml::node& n, const std::string& what, const fs::path& folder,
                 std::vector<Manifest::ShippedFolder>& shipped) {
  const std::string key = fs::weakly_canonical(folder).string();
  for (const auto& s : shipped) {
    if (s.folder == key) return s.digest;
  }
  try {
    std::string archive =
        pack_folder(folder, {"__pycache__", ".git"}, ArchiveLimits{kMaxShippedFolderBytes, 10000});
    std::string digest = sha256_hex(archive);
    shipped.push_back({digest, key, std::move(archive)});
    return digest;
  } catch (const std::exception& e) {
    c.error(n.source(), what + ": workdir: " + e.what());
    return "";
  }
}

void check_script(Checker& c, const toml::node& n, const std::string& what,
                  const CommandTrainer& cmd, const fs::path& folder) {
  const std::string script = script_of(cmd.argv);
  if (script.empty() || fs::path(script).is_absolute()) return;
  if (!cmd.host_workdir.empty()) return;  // the host's folder: only the host can tell
  if (cmd.workdir.empty()) {
    c.error(n.source(), what + ": '" + script +
                            "' is a relative path but the job has no 'workdir' or "
                            "'host_workdir' to find it in");
    return;
  }
  std::error_code ec;
  if (!fs::is_regular_file(folder / script, ec))
    c.error(n.source(),
            what + ": '" + script + "' is not a file in its workdir " + folder.string());
}

}  // namespace

void parse_command(Checker& c, const toml::table& t, const std::string& what,
                   const fs::path& manifest_dir, JobSpec& job,
                   std::vector<Manifest::ShippedFolder>& shipped) {
  for (const char* key : {"model", "params", "data"}) {
    if (const toml::node* n = t.get(key))
      c.error(n->source(), what + ": a command job has no '" + key +
                               "' (give its script's settings as arguments of 'trainer')");
  }
  const toml::node* trainer = t.get("trainer");
  CommandTrainer cmd;
  cmd.argv = parse_argv(c, *trainer, what);
  const auto workdir = get<std::string>(c, t, "workdir", what, "a string");
  const auto host_workdir = get<std::string>(c, t, "host_workdir", what, "a string");
  if (workdir && host_workdir) {
    c.error(t.get("host_workdir")->source(),
            what +
                ": give 'workdir' (shipped from beside the manifest) or 'host_workdir' (present "
                "on the host), not both");
    return;
  }
  fs::path folder;
  if (workdir) {
    folder = manifest_dir / *workdir;
    cmd.workdir = ship(c, *t.get("workdir"), what, folder, shipped);
  }
  if (host_workdir) {
    if (!fs::path(*host_workdir).is_absolute())
      c.error(t.get("host_workdir")->source(),
              what + ": 'host_workdir' must be an absolute path on the host");
    cmd.host_workdir = *host_workdir;
  }
  if (cmd.argv.empty()) return;
  if (!workdir || !cmd.workdir.empty()) check_script(c, *trainer, what, cmd, folder);
  job.command = std::move(cmd);
}

}  // namespace tv::fleet::manifest_parts
