// `artifacts JOB`: the artifacts a job's holders uploaded.
#include <cstdio>
#include <memory>

#include "ops_connection.hpp"
#include "terminal_text.hpp"

namespace tv::cli {

void add_artifact_commands(CLI::App& app) {
  auto f = std::make_shared<OpsFlags>();
  CLI::App* artifacts = app.add_subcommand("artifacts", "A job's artifacts");
  add_connection_flags(*artifacts, *f);
  artifacts->add_option("JOB", f->job, "Job id, unique id prefix, or name")->required();
  artifacts->callback([f] {
    OpsConnection c(*f);
    const auto list = value_of(c.client().artifacts(c.resolve(f->job)));
    print(*f, nlohmann::json(fleet::api::ArtifactList{list}), [&] {
      for (const auto& a : list) {
        std::printf("%-20s %12llu  %s\n", terminal_text(a.name).c_str(),
                    static_cast<unsigned long long>(a.size), terminal_text(a.digest).c_str());
      }
    });
  });
}

}  // namespace tv::cli
