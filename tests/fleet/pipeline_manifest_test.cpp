// The manifest's [[pipelines]] against the real plugins: a good pipeline, and a catalogue of bad
// ones, each refused with its file:line:column message.
#include <gtest/gtest.h>

#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/drift/drift_statistics.hpp"
#include "trainvisor/fleet/manifest.hpp"

namespace tv::fleet {
namespace {

const PluginRegistry& plugins() {
  static const PluginRegistry r = PluginRegistry::load({TV_PLUGIN_DIR});
  return r;
}

const HostTriggerServices& services() {
  static const HostTriggerServices s(plugins(), drift::drift_statistics());
  return s;
}

const char* kGood = R"([[pipelines]]
name = "fmnist"
model = "mlp"
seed = 7
initial_pass = "train"
initial_model = "random"
[pipelines.params]
hidden = 64
[pipelines.hyper]
training.optimizer.learning_rate = 0.05
[pipelines.stream]
shape = [784]
classes = 10
[pipelines.trigger]
plugin = "data_drift"
reference_size = 500
current_size = 500
[pipelines.strategy]
kind = "finetune"
epochs = 2
[pipelines.evaluation]
holdout = 0.2
metrics = ["accuracy", "loss"]
[pipelines.deployment]
alias = "fmnist-prod"
min_accuracy = 0.7
max_regression = 0.02
directory = "/srv/models/fmnist"
[[pipelines.policies]]
name = "plateau"

[[pipelines]]
name = "fmnist-window"
model = "cnn"
initial_model = "pipeline:fmnist"
[pipelines.stream]
shape = [1, 28, 28]
classes = 10
[pipelines.trigger]
plugin = "data_count"
every = 2000
[pipelines.strategy]
kind = "window"
window_samples = 5000
)";

TEST(PipelineManifest, GoodPipelinesParse) {
  const Manifest m = parse_manifest(kGood, "p.toml", plugins(), &services());
  ASSERT_EQ(m.pipelines.size(), 2u);
  const PipelineSpec& p = m.pipelines[0];
  EXPECT_EQ(p.name, "fmnist");
  EXPECT_EQ(p.training.model, "mlp");
  EXPECT_EQ(p.training.seed, 7u);
  EXPECT_EQ(std::get<std::int64_t>(p.training.model_params.at("hidden")), 64);
  EXPECT_DOUBLE_EQ(std::get<double>(p.training.hyper.at("training/optimizer/learning_rate")), 0.05);
  ASSERT_EQ(p.training.policies.size(), 1u);
  EXPECT_EQ(p.stream.sample_shape, (std::vector<std::int64_t>{784}));
  EXPECT_EQ(p.stream.num_classes, 10);
  EXPECT_EQ(p.trigger, "data_drift");
  EXPECT_EQ(std::get<std::int64_t>(p.trigger_params.at("reference_size")), 500);
  EXPECT_EQ(p.strategy.kind, StrategyKind::kFinetune);
  EXPECT_EQ(p.strategy.epochs, 2);
  EXPECT_EQ(p.initial_pass, InitialPass::kTrain);
  EXPECT_DOUBLE_EQ(p.evaluation.holdout, 0.2);
  EXPECT_EQ(p.evaluation.metrics, (std::vector<std::string>{"accuracy", "loss"}));
  EXPECT_EQ(p.deployment.alias, "fmnist-prod");
  EXPECT_DOUBLE_EQ(p.deployment.min_accuracy, 0.7);
  EXPECT_EQ(p.deployment.directory, "/srv/models/fmnist");
  const PipelineSpec& w = m.pipelines[1];
  EXPECT_EQ(w.initial_model.kind, InitialModelKind::kPipeline);
  EXPECT_EQ(w.initial_model.ref, "fmnist");
  EXPECT_EQ(w.strategy.kind, StrategyKind::kWindow);
  EXPECT_EQ(w.strategy.window_samples, 5000);
  EXPECT_EQ(w.deployment.alias, "fmnist-window");  // the pipeline's name by default
  EXPECT_EQ(w.stream.sample_shape, (std::vector<std::int64_t>{1, 28, 28}));
}

// A pipeline with everything required, and `extra` lines in its top table, and the rest.
std::string pipeline(const std::string& extra, const std::string& tables = "") {
  return "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n" + extra +
         "[pipelines.stream]\nshape = [4]\nclasses = 3\n[pipelines.trigger]\nplugin = "
         "\"data_count\"\n" +
         tables;
}

struct BadCase {
  const char* name;
  std::string text;
  std::string message;
};
class BadPipeline : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadPipeline, IsRefusedWithPosition) {
  const BadCase& c = GetParam();
  try {
    parse_manifest(c.text, "bad.toml", plugins(), &services());
    FAIL() << "accepted";
  } catch (const ManifestError& e) {
    ASSERT_FALSE(e.diagnostics().empty());
    EXPECT_EQ(e.diagnostics()[0], c.message) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, BadPipeline,
    ::testing::Values(
        BadCase{"unknown_trigger",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = "
                "[4]\nclasses = 3\n[pipelines.trigger]\nplugin = \"data_drfit\"\n",
                "bad.toml:8:10: pipeline 'p': no trigger plugin named 'data_drfit' (did you mean "
                "'data_drift'?); loaded: data_count, data_drift, ensemble, time"},
        BadCase{"trigger_param", pipeline("", "evry = 3\n"),
                "bad.toml:9:1: pipeline 'p': trigger 'data_count' has no parameter 'evry' (did "
                "you mean 'every'?)"},
        BadCase{"trigger_param_range", pipeline("", "every = 0\n"),
                "bad.toml:9:9: pipeline 'p': trigger 'data_count' parameter 'every': 0 is below "
                "the minimum 1"},
        BadCase{"ensemble_member",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = "
                "[4]\nclasses = 3\n[pipelines.trigger]\nplugin = \"ensemble\"\nmembers = "
                "\"data_count(evry=3)\"\n",
                "bad.toml:7:1: pipeline 'p': trigger 'ensemble': parameter 'members': member 1 "
                "('data_count'): trigger 'data_count' has no parameter 'evry' (did you mean "
                "'every'?)"},
        BadCase{"finetune_without_model",
                pipeline("", "[pipelines.strategy]\nkind = \"finetune\"\n"),
                "bad.toml:1:1: pipeline 'p': strategy 'finetune' trains the previous model, and "
                "the first training has none: set initial_model to \"artifact:SHA256\" or "
                "\"pipeline:NAME\", or initial_pass = \"train\""},
        BadCase{"strategy_kind", pipeline("", "[pipelines.strategy]\nkind = \"retrian\"\n"),
                "bad.toml:10:8: pipeline 'p': strategy: 'kind' is 'retrian', not one of retrain, "
                "finetune, window (did you mean 'retrain'?)"},
        BadCase{"window_needs_size", pipeline("", "[pipelines.strategy]\nkind = \"window\"\n"),
                "bad.toml:9:1: pipeline 'p': strategy: kind = \"window\" needs 'window_samples'"},
        BadCase{"shape_missing",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nclasses = "
                "3\n[pipelines.trigger]\nplugin = \"data_count\"\n",
                "bad.toml:4:1: pipeline 'p': stream: 'shape' must be an array of 1 to 4 positive "
                "integers, one sample's shape (e.g. [784] or [1, 28, 28])"},
        BadCase{"shape_zero",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = [0]\n"
                "classes = 3\n[pipelines.trigger]\nplugin = \"data_count\"\n",
                "bad.toml:5:10: pipeline 'p': stream: each 'shape' entry must be a positive "
                "integer, and a sample at most 1048576 values"},
        BadCase{"unknown_source",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nsource = "
                "\"ingset\"\nshape = [4]\nclasses = 3\n[pipelines.trigger]\nplugin = "
                "\"data_count\"\n",
                "bad.toml:5:10: pipeline 'p': stream: 'source' is 'ingset', not one of ingest "
                "(did you mean 'ingest'?)"},
        BadCase{"no_trigger",
                "[[pipelines]]\nname = \"p\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = "
                "[4]\nclasses = 3\n",
                "bad.toml:1:1: pipeline 'p' has no [trigger] table (plugin = NAME and its "
                "parameters)"},
        BadCase{"initial_pipeline_unknown", pipeline("initial_model = \"pipeline:q\"\n"),
                "bad.toml:4:17: pipeline 'p': initial_model names no pipeline of this manifest: "
                "'q'"},
        BadCase{"initial_model_form", pipeline("initial_model = \"latest\"\n"),
                "bad.toml:4:17: pipeline 'p': initial_model 'latest' is none of \"random\", "
                "\"artifact:SHA256\" (64 lowercase hex digits of a bundle) or \"pipeline:NAME\" "
                "(that pipeline's deployed model)"},
        BadCase{"nothing_to_evaluate", pipeline("", "[pipelines.evaluation]\nholdout = 0\n"),
                "bad.toml:9:1: pipeline 'p': evaluation: holdout = 0 and no 'set' leaves nothing "
                "to evaluate on"},
        BadCase{"unknown_metric",
                pipeline("", "[pipelines.evaluation]\nmetrics = [\"accuracy\", \"f1\"]\n"),
                "bad.toml:10:11: pipeline 'p': evaluation: unknown metric 'f1' (metrics: "
                "accuracy, macro_f1, loss)"},
        BadCase{"gate_range", pipeline("", "[pipelines.deployment]\nmin_accuracy = 1.5\n"),
                "bad.toml:10:16: pipeline 'p': deployment: 'min_accuracy' must be in [0, 1], "
                "got 1.5"},
        BadCase{"relative_directory",
                pipeline("", "[pipelines.deployment]\ndirectory = \"models\"\n"),
                "bad.toml:10:13: pipeline 'p': deployment: 'directory' must be an absolute path"},
        BadCase{"unknown_key", pipeline("tirgger = 1\n"),
                "bad.toml:4:1: pipeline 'p' has no key 'tirgger' (did you mean 'trigger'?)"},
        BadCase{"initial_pass", pipeline("initial_pass = \"all\"\n"),
                "bad.toml:4:16: pipeline 'p': 'initial_pass' is 'all', not one of ignore, train, "
                "replay"},
        BadCase{"trigger_features", pipeline("", "features = \"embedings\"\n"),
                "bad.toml:9:12: pipeline 'p': trigger: 'features' is 'embedings', not one of "
                "raw, embeddings (did you mean 'embeddings'?)"},
        BadCase{"duplicate", pipeline("") + pipeline(""),
                "bad.toml:10:8: pipeline 'p' is defined twice"}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(PipelineManifest, DriftOnEmbeddingsNeedsAModelThatHasThem) {
  const Manifest raw = parse_manifest(pipeline(""), "p.toml", plugins(), &services());
  EXPECT_EQ(raw.pipelines.at(0).trigger_features, TriggerFeatures::kRaw);
  const Manifest m = parse_manifest(pipeline("", "features = \"embeddings\"\nevery = 5\n"),
                                    "p.toml", plugins(), &services());
  EXPECT_EQ(m.pipelines.at(0).trigger_features, TriggerFeatures::kEmbeddings);
  // `features` is the framework's, not the trigger plugin's parameter.
  EXPECT_EQ(m.pipelines.at(0).trigger_params.count("features"), 0u);
  EXPECT_EQ(std::get<std::int64_t>(m.pipelines.at(0).trigger_params.at("every")), 5);

  // The example logistic regression has no hidden layer, and no embeddings.
  const PluginRegistry with_logreg = PluginRegistry::load({TV_PLUGIN_DIR, TV_EXAMPLE_PLUGIN_DIR});
  ASSERT_TRUE(with_logreg.errors().empty()) << with_logreg.errors()[0].message();
  const HostTriggerServices s(with_logreg, drift::drift_statistics());
  std::string text = pipeline("", "features = \"embeddings\"\n");
  text.replace(text.find("\"tiny\""), 6, "\"logreg\"");
  try {
    parse_manifest(text, "bad.toml", with_logreg, &s);
    FAIL() << "accepted";
  } catch (const ManifestError& e) {
    ASSERT_FALSE(e.diagnostics().empty());
    EXPECT_EQ(e.diagnostics()[0],
              "bad.toml:9:12: pipeline 'p': trigger features = \"embeddings\", but model "
              "'logreg' has no embeddings (its plugin does not implement Model::embed)");
  }
}

TEST(PipelineManifest, TwoPipelinesCannotShareAnAlias) {
  const std::string text =
      pipeline("", "[pipelines.deployment]\nalias = \"prod\"\n") +
      "[[pipelines]]\nname = \"q\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = [4]\nclasses = "
      "3\n[pipelines.trigger]\nplugin = \"data_count\"\n[pipelines.deployment]\nalias = "
      "\"prod\"\n";
  try {
    parse_manifest(text, "bad.toml", plugins());
    FAIL() << "accepted";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.diagnostics().back(),
              "bad.toml:11:1: pipeline 'q': deployment alias 'prod' is also pipeline 'p''s");
  }
}

}  // namespace
}  // namespace tv::fleet
