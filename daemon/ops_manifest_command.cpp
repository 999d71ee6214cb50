// `reload [--dry-run]`: the coordinator re-reads its manifest and says what changed, including
// the jobs a changed spec replaced (new ids beside the old ones, by name).
#include <cstdio>
#include <memory>

#include "ops_connection.hpp"

namespace tv::cli {
namespace {

struct ReloadFlags : OpsFlags {
  bool dry_run = false;
};

std::string names(const std::vector<std::string>& list) {
  std::string s;
  for (const auto& n : list)
    s += (s.empty() ? "" : ", ") + terminal_text(n);
  return s.empty() ? std::string("none") : s;
}

}  // namespace

void add_manifest_commands(CLI::App& app) {
  auto f = std::make_shared<ReloadFlags>();
  CLI::App* reload = app.add_subcommand("reload", "Re-read the coordinator's manifest");
  reload->add_flag("--dry-run", f->dry_run, "Show what would change; write nothing");
  add_connection_flags(*reload, *f);
  reload->callback([f] {
    OpsConnection c(*f);
    const fleet::api::ReloadReply r = value_of(c.operator_client().reload_manifest(f->dry_run));
    print(*f, nlohmann::json(r), [&] {
      std::printf(
          "%sadded: %s\nunchanged: %s\nno longer in the manifest (kept until cancelled): %s\n",
          f->dry_run ? "dry run, nothing written\n" : "", names(r.added).c_str(),
          names(r.unchanged).c_str(), names(r.removed).c_str());
      // A changed spec is a new job beside the old one: its name now names several jobs, so
      // the operator learns here which id is which.
      for (const auto& j : r.replaced) {
        std::vector<std::string> old_ids;
        for (const auto& id : j.replaces)
          old_ids.push_back(short_id(id));
        std::printf("changed: %s is now job %s, replacing %s (kept; give an id to reach it)\n",
                    terminal_text(j.name).c_str(), terminal_text(short_id(j.id)).c_str(),
                    names(old_ids).c_str());
      }
      for (const std::string& w : r.warnings)
        std::printf("%s\n", terminal_text(w).c_str());
    });
  });
}

}  // namespace tv::cli
