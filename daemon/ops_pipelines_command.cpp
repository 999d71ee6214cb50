// `pipelines list | show NAME | triggers NAME | deploy NAME DIGEST --reason | rollback NAME
// --reason`: the continual-training pipelines, their firings and what became of each training,
// and an operator's moves of a pipeline's deployment alias.
#include <cstdio>
#include <memory>

#include "ops_connection.hpp"
#include "table_number.hpp"

namespace tv::cli {
namespace {

struct PipelineFlags : OpsFlags {
  std::string name;
  std::string digest;
  std::string reason;
};

std::string text_or_dash(const std::string& s) {
  return s.empty() ? "-" : terminal_text(s);
}

void list_pipelines(const PipelineFlags& f) {
  OpsConnection c(f);
  const auto r = value_of(c.client().pipelines());
  print(f, nlohmann::json(fleet::api::PipelineList{r}), [&] {
    std::printf("%-24s %-8s %-12s %-10s %9s %9s %8s  %s\n", "NAME", "STATE", "TRIGGER", "STRATEGY",
                "SAMPLES", "READ", "FIRINGS", "DEPLOYED");
    for (const auto& p : r) {
      std::printf("%-24s %-8s %-12s %-10s %9lld %9lld %8lld  %s\n", terminal_text(p.name).c_str(),
                  p.state.c_str(), terminal_text(p.trigger).c_str(), p.strategy.c_str(),
                  static_cast<long long>(p.samples), static_cast<long long>(p.read_samples),
                  static_cast<long long>(p.triggers),
                  p.deployed.empty() ? "-"
                                     : (short_id(p.deployed) + " (firing " +
                                        std::to_string(p.deployed_trigger) + ")")
                                           .c_str());
      if (!p.error.empty()) std::printf("  stopped: %s\n", terminal_text(p.error).c_str());
    }
  });
}

void show_pipeline(const PipelineFlags& f) {
  OpsConnection c(f);
  const auto d = value_of(c.client().pipeline(f.name));
  print(f, nlohmann::json(d), [&] {
    const auto& p = d.summary;
    std::printf("pipeline %s (%s)\n", terminal_text(p.name).c_str(), p.state.c_str());
    if (!p.error.empty()) std::printf("  stopped:  %s\n", terminal_text(p.error).c_str());
    std::printf("  model:    %s\n  trigger:  %s\n  strategy: %s\n", terminal_text(p.model).c_str(),
                terminal_text(p.trigger).c_str(), p.strategy.c_str());
    if (p.features == "embeddings" && p.features_since_seq >= 0) {
      std::printf("  features: embeddings of %s, since segment %lld\n",
                  p.features_model.empty() ? "the initial model (drawn from the seed)"
                                           : short_id(p.features_model).c_str(),
                  static_cast<long long>(p.features_since_seq));
    }
    std::printf("  stream:   %lld samples in %lld segments, %lld read by the trigger\n",
                static_cast<long long>(p.samples), static_cast<long long>(p.segments),
                static_cast<long long>(p.read_samples));
    std::printf("  firings:  %lld\n  alias:    %s -> %s\n", static_cast<long long>(p.triggers),
                terminal_text(p.alias).c_str(), text_or_dash(p.deployed).c_str());
    for (const auto& m : d.alias_log) {
      std::printf("    rev %lld  %s  %s  %s (was %s): %s\n", static_cast<long long>(m.revision),
                  utc_time_text(m.at_ms).c_str(), terminal_text(m.actor).c_str(),
                  short_id(m.digest).c_str(),
                  m.previous.empty() ? "-" : short_id(m.previous).c_str(),
                  terminal_text(m.reason).c_str());
    }
    std::printf("  spec:     %s\n", terminal_text(d.spec.dump()).c_str());
  });
}

std::string accuracy_text(const nlohmann::json& metrics, const char* side) {
  const auto s = metrics.find(side);
  if (s == metrics.end() || !s->is_object() || !s->contains("accuracy") ||
      !(*s)["accuracy"].is_number())
    return "-";
  return table_number((*s)["accuracy"].get<double>());
}

void list_triggers(const PipelineFlags& f) {
  OpsConnection c(f);
  const auto t = value_of(c.client().pipeline_triggers(f.name));
  print(f, nlohmann::json(t), [&] {
    std::printf("%4s %9s %-19s %-9s %-12s %8s %8s  %s\n", "#", "SAMPLE", "WINDOW", "OUTCOME", "JOB",
                "NEW_ACC", "DEP_ACC", "REASON / GATE");
    for (const auto& r : t.triggers) {
      const std::string window =
          "[" + std::to_string(r.window_begin) + ", " + std::to_string(r.end_sample) + ")";
      std::printf("%4lld %9lld %-19s %-9s %-12s %8s %8s  %s\n", static_cast<long long>(r.index),
                  static_cast<long long>(r.end_sample), window.c_str(), r.outcome.c_str(),
                  short_id(r.job_id).c_str(), accuracy_text(r.metrics, "new").c_str(),
                  accuracy_text(r.metrics, "deployed").c_str(), terminal_text(r.reason).c_str());
      if (!r.gate.empty()) std::printf("%64s%s\n", "", terminal_text(r.gate).c_str());
    }
  });
}

void print_move(const PipelineFlags& f, const fleet::api::AliasMove& m, const char* what) {
  print(f, nlohmann::json(m), [&] {
    std::printf("%s: alias %s now holds %s (revision %lld, was %s)\n", what,
                terminal_text(m.alias).c_str(), m.digest.c_str(),
                static_cast<long long>(m.revision),
                m.previous.empty() ? "nothing" : m.previous.c_str());
  });
}

}  // namespace

void add_pipeline_commands(CLI::App& app) {
  auto f = std::make_shared<PipelineFlags>();
  CLI::App* p = app.add_subcommand("pipelines", "Continual-training pipelines and their models");
  p->require_subcommand(1);
  CLI::App* list = p->add_subcommand("list", "Every pipeline: its stream, firings and model");
  CLI::App* show = p->add_subcommand("show", "One pipeline: its spec and its alias's history");
  CLI::App* triggers =
      p->add_subcommand("triggers", "A pipeline's firings and what became of each training");
  CLI::App* deploy = p->add_subcommand("deploy", "Move a pipeline's alias to one of its models");
  CLI::App* rollback =
      p->add_subcommand("rollback", "Move a pipeline's alias back to the model it held before");
  for (CLI::App* cmd : {list, show, triggers, deploy, rollback})
    add_connection_flags(*cmd, *f);
  for (CLI::App* cmd : {show, triggers, deploy, rollback})
    cmd->add_option("NAME", f->name, "The pipeline's name")->required();
  deploy->add_option("DIGEST", f->digest, "A model (bundle sha256) one of its trainings made")
      ->required();
  for (CLI::App* cmd : {deploy, rollback})
    cmd->add_option("--reason", f->reason, "Why (kept in the alias's log)")->required();
  list->callback([f] { list_pipelines(*f); });
  show->callback([f] { show_pipeline(*f); });
  triggers->callback([f] { list_triggers(*f); });
  deploy->callback([f] {
    OpsConnection c(*f);
    print_move(*f, value_of(c.operator_client().deploy(f->name, {f->digest, f->reason})),
               "deployed");
  });
  rollback->callback([f] {
    OpsConnection c(*f);
    print_move(*f, value_of(c.operator_client().rollback(f->name, {f->reason})), "rolled back");
  });
}

}  // namespace tv::cli
