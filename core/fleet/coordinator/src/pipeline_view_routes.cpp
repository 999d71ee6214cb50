// The pipeline routes that read and steer: the pipelines and their firings, the deployed model,
// an operator's deploy and rollback, and segment downloads for the hosts that train on them.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/api/pipelines.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;

nlohmann::json object_or_empty(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

const char* strategy_name(const PipelineSpec& spec) {
  return to_string(spec.strategy.kind);
}

api::PipelineSummary summary(CoordinatorState& s, const PipelineSpec& spec,
                             const pipelines::PipelineStatus& status) {
  api::PipelineSummary out;
  out.name = spec.name;
  out.model = spec.training.model;
  out.trigger = spec.trigger;
  out.source = spec.stream.source;
  out.strategy = strategy_name(spec);
  out.state = status.state;
  out.error = status.error;
  // The newest segment says how long the stream is; the index is not read whole.
  if (const auto last = s.segments->last(spec.name)) {
    out.segments = last->seq + 1;
    out.samples = last->first_sample + last->rows;
  }
  out.read_samples = status.end_sample;
  out.triggers = status.triggers;
  for (const pipelines::TriggerRecord& r : s.pipeline_store->training())
    out.training += r.pipeline == spec.name ? 1 : 0;
  out.alias = spec.deployment.alias;
  if (const auto a = s.pipeline_store->alias(spec.deployment.alias)) {
    out.deployed = a->digest;
    out.deployed_trigger = a->trigger;
  }
  out.features = to_string(spec.trigger_features);
  out.trigger_cpu_s = status.trigger_cpu_s;
  out.trigger_wall_s = status.trigger_wall_s;
  if (status.features_model) {
    out.features_model = *status.features_model;
    out.features_since_seq = status.features_since_seq;
  }
  return out;
}

// The summary of the pipeline named in the route, or nothing when there is none.
std::optional<api::PipelineSummary> find_summary(CoordinatorState& s, const std::string& name) {
  const std::optional<PipelineSpec> spec = s.runner->pipeline(name);
  if (!spec) return std::nullopt;
  for (const pipelines::PipelineStatus& st : s.runner->status()) {
    if (st.name == name) return summary(s, *spec, st);
  }
  pipelines::PipelineStatus not_begun;
  not_begun.name = name;
  not_begun.state = "running";
  return summary(s, *spec, not_begun);
}

api::TriggerInfo trigger_info(const pipelines::TriggerRecord& r) {
  api::TriggerInfo t;
  t.index = r.index;
  t.window_begin = r.window_begin;
  t.end_sample = r.end_sample;
  t.time_ns = r.time_ns;
  t.reason = r.reason;
  t.stats = object_or_empty(r.stats_json);
  t.job_id = r.job_id;
  t.initial_weights = r.initial_weights;
  t.baseline = r.baseline;
  t.outcome = pipelines::to_string(r.outcome);
  t.model = r.model;
  t.metrics = object_or_empty(r.metrics_json);
  t.gate = r.gate;
  t.fired_ms = r.fired_ms;
  t.decided_ms = r.decided_ms;
  return t;
}

api::AliasMove alias_move(const pipelines::AliasEvent& e) {
  return {e.alias,    e.pipeline, e.digest, e.previous, e.trigger,
          e.revision, e.actor,    e.reason, e.at_ms};
}

nlohmann::json spec_json(const PipelineSpec& p) {
  return {{"name", p.name},
          {"model", p.training.model},
          {"params", params_json(p.training.model_params)},
          {"hyper", params_json(p.training.hyper)},
          {"stream",
           {{"source", p.stream.source},
            {"shape", p.stream.sample_shape},
            {"classes", p.stream.num_classes}}},
          {"trigger",
           {{"plugin", p.trigger},
            {"params", params_json(p.trigger_params)},
            {"features", to_string(p.trigger_features)}}},
          {"initial_model", std::string(to_string(p.initial_model.kind)) +
                                (p.initial_model.ref.empty() ? "" : ":" + p.initial_model.ref)},
          {"strategy",
           {{"kind", to_string(p.strategy.kind)},
            {"window_samples", p.strategy.window_samples},
            {"epochs", p.strategy.epochs}}},
          {"evaluation",
           {{"holdout", p.evaluation.holdout},
            {"set", p.evaluation.set_digest},
            {"metrics", p.evaluation.metrics}}},
          {"deployment",
           {{"alias", p.deployment.alias},
            {"min_accuracy", p.deployment.min_accuracy},
            {"max_regression", p.deployment.max_regression},
            {"directory", p.deployment.directory}}},
          {"initial_pass", to_string(p.initial_pass)}};
}

Response show(CoordinatorState& s, const std::string& name) {
  const std::optional<api::PipelineSummary> sum = find_summary(s, name);
  if (!sum) return no_such_pipeline(s, name);
  api::PipelineDetail d;
  d.summary = *sum;
  d.spec = spec_json(*s.runner->pipeline(name));
  for (const pipelines::AliasEvent& e : s.pipeline_store->alias_log(sum->alias))
    d.alias_log.push_back(alias_move(e));
  return Response::json(200, nlohmann::json(d));
}

Response list(CoordinatorState& s) {
  api::PipelineList out;
  for (const pipelines::PipelineStatus& st : s.runner->status()) {  // every pipeline, once
    if (const auto spec = s.runner->pipeline(st.name))
      out.pipelines.push_back(summary(s, *spec, st));
  }
  return Response::json(200, nlohmann::json(out));
}

Response triggers(CoordinatorState& s, const std::string& name) {
  if (!s.runner->pipeline(name)) return no_such_pipeline(s, name);
  api::TriggerList out{name, {}};
  for (const pipelines::TriggerRecord& r : s.pipeline_store->triggers(name))
    out.triggers.push_back(trigger_info(r));
  return Response::json(200, nlohmann::json(out));
}

// The deployed bundle's bytes.
Response model(CoordinatorState& s, const std::string& name) {
  const std::optional<PipelineSpec> spec = s.runner->pipeline(name);
  if (!spec) return no_such_pipeline(s, name);
  const auto alias = s.pipeline_store->alias(spec->deployment.alias);
  if (!alias) {
    return Response::error(
        404, "pipeline '" + name + "': alias '" + spec->deployment.alias + "' holds no model yet");
  }
  const auto info = s.artifacts->stat(alias->digest);
  if (!info) return Response::error(404, "artifact " + alias->digest + ": not stored");
  Response res;
  res.content_type = "application/octet-stream";
  res.file_path = info->path.string();
  res.headers.emplace_back("X-Model-Digest", alias->digest);
  return res;
}

// The move just made, as its alias log records it.
Response move_reply(CoordinatorState& s, const pipelines::AliasState& a) {
  for (const pipelines::AliasEvent& e : s.pipeline_store->alias_log(a.alias)) {
    if (e.revision == a.revision) return Response::json(200, nlohmann::json(alias_move(e)));
  }
  return Response::error(500, "alias '" + a.alias + "': its move is not in its log");
}

Response deploy(CoordinatorState& s, Request& req) {
  const std::string& name = req.params[0];
  const std::optional<PipelineSpec> spec = s.runner->pipeline(name);
  if (!spec) return no_such_pipeline(s, name);
  const auto body = body_json(req).get<api::DeployRequest>();
  if (body.reason.empty()) return Response::error(400, "reason: say why the model is deployed");
  try {
    const pipelines::AliasState moved = s.pipeline_store->deploy(
        spec->deployment.alias, name, body.digest, operator_actor(req), body.reason);
    publish_deployment(s, *spec, moved);
    return move_reply(s, moved);
  } catch (const pipelines::PipelineStoreError& e) {
    return Response::error(409, e.what());
  }
}

Response rollback(CoordinatorState& s, Request& req) {
  const std::string& name = req.params[0];
  const std::optional<PipelineSpec> spec = s.runner->pipeline(name);
  if (!spec) return no_such_pipeline(s, name);
  const auto body = body_json(req).get<api::RollbackRequest>();
  if (body.reason.empty()) return Response::error(400, "reason: say why the model is rolled back");
  try {
    const pipelines::AliasState moved =
        s.pipeline_store->rollback(spec->deployment.alias, operator_actor(req), body.reason);
    publish_deployment(s, *spec, moved);
    return move_reply(s, moved);
  } catch (const pipelines::PipelineStoreError& e) {
    return Response::error(409, e.what());
  }
}

Response segment(CoordinatorState& s, const std::string& digest) {
  std::string path;
  try {
    path = s.segments->path_of(digest);
  } catch (const std::exception& e) {
    return Response::error(400, e.what());
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return Response::error(404, "segment " + digest + ": not stored");
  Response res;
  res.content_type = api::kSampleBatchContentType;
  res.file_path = path;
  return res;
}

}  // namespace

void add_pipeline_read_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  auto read = [&s, &r](std::string_view pattern, auto fn) {
    r.push_back({"GET", std::string(pattern),
                 for_readers(s, [&s, fn](Request& req, BodyStream*) { return fn(s, req); })});
  };
  read(api::kPipelines, [](CoordinatorState& st, Request&) { return list(st); });
  read(api::kPipeline, [](CoordinatorState& st, Request& req) { return show(st, req.params[0]); });
  read(api::kPipelineTriggers,
       [](CoordinatorState& st, Request& req) { return triggers(st, req.params[0]); });
  read(api::kPipelineModel,
       [](CoordinatorState& st, Request& req) { return model(st, req.params[0]); });
  read(api::kSegment,
       [](CoordinatorState& st, Request& req) { return segment(st, req.params[0]); });
  r.push_back({"POST", std::string(api::kPipelineDeploy),
               for_operators(s, [&s](Request& req, BodyStream*) { return deploy(s, req); })});
  r.push_back({"POST", std::string(api::kPipelineRollback),
               for_operators(s, [&s](Request& req, BodyStream*) { return rollback(s, req); })});
}

}  // namespace tv::fleet::coordinator
