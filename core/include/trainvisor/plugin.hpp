// The Trainvisor plugin API: the one header a plugin includes (besides libtorch, for models).
//
// A plugin is a shared library that defines one class derived from ModelPlugin, PolicyPlugin or
// TriggerPlugin and ends with TRAINVISOR_PLUGIN(ThatClass). The macro exports one factory under
// the fixed Boost.DLL alias `trainvisor_plugin_factory`. The host loads every library in its
// plugin directories, calls the factory, checks the plugin ABI version first, then the
// descriptor (kind, name, version, parameter schema), and refuses anything wrong with a message
// naming the file. Libraries are never unloaded (libtorch's static registrations crash on
// unload), so objects a plugin returns stay valid for the life of the process.
//
// Rules for plugin code:
//  - No exception leaves a plugin: report failures through the `error` out-parameters (the
//    factory macro converts anything a constructor throws into an error value).
//  - Parameters arrive validated against the plugin's own schema and completed with defaults.
//  - Build with -fvisibility=hidden; only the factory alias is exported.
//
// Model plugins use libtorch types; this header only forward-declares them so that the host's
// loader and non-model plugins compile without libtorch. A model plugin includes
// <torch/torch.h> itself.
#pragma once

#include <boost/dll/alias.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace at {
class Tensor;
}
namespace torch::nn {
class Module;
}

// The interface classes keep default visibility inside plugins built with -fvisibility=hidden,
// so their type_info and vtables are the host's and dynamic_cast works across the boundary.
#define TV_PLUGIN_API __attribute__((visibility("default")))

namespace tv::plugin {

// Bumped whenever anything below changes in a way a built plugin would notice.
// 2: Policy::observe takes an Observation (live config, human holds); Policy::outcome.
// 3: Trigger observes SampleBatches and returns its evaluations; TriggerServices (drift
//    statistics, ensemble members).
// 4: Model::embed and ModelPlugin::has_embeddings (drift measured on a model's embeddings).
inline constexpr std::uint32_t kAbiVersion = 4;

enum class Kind : std::uint32_t { kModel = 1, kPolicy = 2, kTrigger = 3 };

enum class ParamType : std::uint32_t { kFloat64 = 1, kInt64 = 2, kBool = 3, kString = 4 };

using ParamValue = std::variant<double, std::int64_t, bool, std::string>;

// One parameter of a plugin (or of the trainer's own knobs). Ranges apply to numbers, allowed
// values to strings; both are checked by the host before a value reaches the plugin.
struct ParamSpec {
  std::string key;
  ParamType type = ParamType::kFloat64;
  ParamValue default_value;
  std::optional<double> min;
  std::optional<double> max;
  std::vector<std::string> allowed;
  std::string help;
};

struct Descriptor {
  Kind kind = Kind::kModel;
  std::string name;     // [a-z0-9_-]+, unique among loaded plugins
  std::string version;  // the plugin's own version, e.g. "1.2.0"
  std::string summary;  // one line for `trainvisor plugins list`
  std::vector<ParamSpec> params;
};

// Parameter values by key, validated and completed with defaults by the host.
using Params = std::map<std::string, ParamValue>;

// The key paths of the trainer's live knobs. The framework owns these knobs on every model, so
// their keys are vocabulary that plugins (policies write them) and the host share; they are
// defined here, in the one header plugins may include, and core's trainer_knobs.hpp gives each
// its type, default and range under the same names. Arrays rather than string_views so that a
// key converts to const char*, std::string_view and std::string alike.
namespace knob {
inline constexpr char kOptimizer[] = "training/optimizer/name";  // read at start only
inline constexpr char kLearningRate[] = "training/optimizer/learning_rate";
inline constexpr char kMomentum[] = "training/optimizer/momentum";
inline constexpr char kWeightDecay[] = "training/optimizer/weight_decay";
inline constexpr char kGradClipMax[] = "training/regularization/grad_clip_max";
inline constexpr char kDropout[] = "training/regularization/dropout";
inline constexpr char kBatchSize[] = "training/control/batch_size";  // applied at the next epoch
inline constexpr char kEvalEvery[] = "training/control/eval_every";
inline constexpr char kMaxEpochs[] = "training/control/max_epochs";
// Setting it true makes the trainer stop at its next step boundary.
inline constexpr char kEarlyStop[] = "training/control/early_stop";
inline constexpr char kCheckpointEvery[] = "training/control/checkpoint_every";
// The config revision, written by the config agent with every batch it applies.
inline constexpr char kRevision[] = "trainvisor/revision";
}  // namespace knob

class TV_PLUGIN_API Plugin {
 public:
  virtual ~Plugin() = default;
  virtual Descriptor describe() const = 0;
};

// ---------------------------------------------------------------------------------------------
// Models. The framework owns the loop, the optimizer and the live knobs; a model plugin builds
// the module and its data.

// A built model. The trainer calls module() for parameters, train()/eval() and serialization.
class TV_PLUGIN_API Model {
 public:
  virtual ~Model() = default;
  virtual std::shared_ptr<torch::nn::Module> module() = 0;
  // inputs: a batch as the Dataset gives it; returns logits [batch, classes].
  virtual at::Tensor forward(const at::Tensor& inputs) = 0;
  // Sets the dropout probability of every dropout layer; false when the model has none.
  virtual bool set_dropout(double p) = 0;
  // The embeddings of a batch: the features the classifier's last layer sees, [batch, dims]
  // float32, for drift measured as the deployed model sees the stream. Called in eval mode
  // without gradients. False (and `embeddings` untouched) when the model has none: a plugin
  // that overrides it also overrides ModelPlugin::has_embeddings.
  virtual bool embed(const at::Tensor& inputs, at::Tensor& embeddings) {
    (void)inputs;
    (void)embeddings;
    return false;
  }
};

// Train and validation tensors, on the CPU, inputs float32 and targets int64 class indices.
class TV_PLUGIN_API Dataset {
 public:
  virtual ~Dataset() = default;
  virtual const at::Tensor& train_inputs() const = 0;
  virtual const at::Tensor& train_targets() const = 0;
  virtual const at::Tensor& val_inputs() const = 0;
  virtual const at::Tensor& val_targets() const = 0;
  virtual std::int64_t num_classes() const = 0;
  virtual std::string describe() const = 0;  // e.g. "fashion-mnist: 60000 train, 10000 val"
};

struct DataOptions {
  std::uint64_t seed = 0;
  std::int64_t max_train_samples = 0;  // 0: all
  std::int64_t max_val_samples = 0;    // 0: all
  std::string data_dir;                // empty: the plugin's default location
};

// An IDX array (the format of MNIST-style data sets): its dimensions and raw big-endian-decoded
// bytes, as the host's reader returns it.
struct IdxArray {
  std::uint32_t magic = 0;
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> bytes;  // element type given by the magic's third byte (0x08: uint8)
};

// What the host offers plugins, so that they need no library of ours to link against.
class TV_PLUGIN_API HostServices {
 public:
  virtual ~HostServices() = default;
  // Reads a gzip-compressed (or plain) IDX file. Returns false with `error` naming the file and
  // the reason for a missing, truncated or corrupt file.
  virtual bool read_idx(const std::string& path, IdxArray& out, std::string& error) const = 0;
};

class TV_PLUGIN_API ModelPlugin : public Plugin {
 public:
  // The model for `params`, seeded by the caller (torch::manual_seed) beforehand. Null with
  // `error` set on failure.
  virtual std::unique_ptr<Model> build(const Params& params, std::string& error) = 0;
  virtual std::unique_ptr<Dataset> load_data(const Params& params, const DataOptions& options,
                                             const HostServices& host, std::string& error) = 0;
  // Whether its models implement Model::embed; a manifest may measure drift on them only then.
  virtual bool has_embeddings() const { return false; }
};

// ---------------------------------------------------------------------------------------------
// Policies. A policy sees a job's telemetry and live config and proposes config writes or a
// stop. It runs in the host's supervisor, never in the trainer.
//
// Precedence: human > freeze > policy. A human's write always goes through (a freeze holds
// policies only). After a human writes a key, every policy leaves that key alone for a grace
// (the framework keys human_grace_evals and human_grace_steps beside the policy's name in the
// manifest; the plugin never sees them): the supervisor refuses a policy's write to a held key
// and lists the holds in each Observation, so that a policy can say in its reason that it
// yields. A write under a frozen prefix is refused by the coordinator. A policy decides from the
// live config it is handed, never from a value it remembers, and commits state that depends on
// a write (a cooldown, a reset counter) only once outcome() says the write was accepted.

// Bits of TelemetryPoint::flags. They are the bits the shared-memory ring carries
// (shm::TelemetryFlag): shm depends on nothing of ours and plugins see only this header, so each
// keeps its own copy and core/src/telemetry_point.cpp static_asserts that the two agree.
enum TelemetryFlag : std::uint32_t {
  kTelemetryEval = 1u << 0,           // val_loss / val_accuracy hold an evaluation
  kTelemetryNonFiniteLoss = 1u << 1,  // the step's update was skipped
  kTelemetryConfigRefused = 1u << 2,  // a config value was refused by the trainer
  kTelemetryCheckpoint = 1u << 3,     // a checkpoint was written at this step
  kTelemetryEpochEnd = 1u << 4,
  kTelemetryFinished = 1u << 5,  // the trainer's last record
};
// Every bit above; a new bit goes into this mask too.
inline constexpr std::uint32_t kTelemetryAllFlags = kTelemetryEval | kTelemetryNonFiniteLoss |
                                                    kTelemetryConfigRefused | kTelemetryCheckpoint |
                                                    kTelemetryEpochEnd | kTelemetryFinished;

// The value of a metric that a record does not carry.
inline constexpr double kMissingMetric = std::numeric_limits<double>::quiet_NaN();

// One telemetry record as policies, the coordinator and its store see it. A metric the record
// does not carry (no evaluation at this step, a skipped update) is NaN, never 0, in every shape
// of the record: the ring's, the C ABI's, the JSON (null) and the stored row (NULL).
struct TelemetryPoint {
  std::uint64_t step = 0;
  std::uint32_t epoch = 0;
  std::uint32_t flags = 0;
  std::int64_t wall_time_ns = 0;  // Unix time
  double loss = kMissingMetric;
  double grad_norm = kMissingMetric;
  double learning_rate = kMissingMetric;  // the rate applied at this step
  std::uint64_t config_revision = 0;      // the config revision applied at this step
  double val_loss = kMissingMetric;
  double val_accuracy = kMissingMetric;
  double samples_per_sec = kMissingMetric;
};

// The job's config: full key paths to values.
using ConfigView = std::map<std::string, ParamValue>;

// A key a human wrote recently: policies leave it alone until the hold ends.
struct HumanHold {
  std::string path;
  std::string actor;           // "human:ana"
  std::uint64_t revision = 0;  // the revision of the human's write
  ParamValue value;            // the value the human wrote
  // The first step the trainer ran with that revision; empty until its telemetry shows it.
  std::optional<std::uint64_t> since_step;
  std::string until;  // when the hold ends, in words: "for 1 more evaluation or until step 5300"
};

// What observe() is given.
struct Observation {
  // Every record of the job so far (the newest ones on a long job) in step order; records from
  // `first_new` on arrived since the previous call.
  std::span<const TelemetryPoint> history;
  std::size_t first_new = 0;
  // The live config: the values the trainer runs with now (its block), whoever wrote them. Not
  // what this policy proposed last: that may have been refused, or overwritten by a human.
  ConfigView config;
  std::vector<HumanHold> holds;  // keys no policy may write now
};

struct ProposedWrite {
  std::string path;
  ParamValue value;
  std::string reason;  // names the signal values that caused it
};

struct Decision {
  std::vector<ProposedWrite> writes;
  bool stop = false;
  std::string stop_reason;
  // The policy runs in dry-run mode: its writes are what it would do; the supervisor reports
  // them and applies nothing.
  bool dry_run = false;
  // What the policy held back and why, when it proposes nothing (e.g. "learning_rate held by
  // human:ana until step 5300: not reduced"); reported like a write's reason.
  std::string note;
};

// What became of one proposed write.
enum class WriteFate : std::uint32_t {
  kApplied = 1,  // written, as WriteResult::revision
  kQueued = 2,   // the coordinator is unreachable: sent, in order, when it is back (accepted)
  kHeld = 3,     // refused: a human wrote the key recently (Observation::holds)
  kFrozen = 4,   // refused: the key is under a frozen prefix
  kInvalid = 5,  // refused: unknown key, wrong type or out of range
  kDryRun = 6,   // not sent: the policy runs in dry run
};

struct WriteResult {
  std::string path;
  WriteFate fate = WriteFate::kInvalid;
  std::uint64_t revision = 0;  // kApplied: the revision it became
  std::string reason;          // a refusal: why, naming the human, the freeze or the rule
};

// What became of the writes of the decision observe() just returned.
struct DecisionOutcome {
  std::vector<WriteResult> writes;

  // True when the write to `path` was applied or queued.
  bool accepted(const std::string& path) const {
    for (const WriteResult& w : writes) {
      if (w.path == path) return w.fate == WriteFate::kApplied || w.fate == WriteFate::kQueued;
    }
    return false;
  }
};

// Called by one supervisor thread at a time; a policy needs no locking.
class TV_PLUGIN_API Policy {
 public:
  virtual ~Policy() = default;
  virtual Decision observe(const Observation& observation) = 0;
  // Called right after observe() when its decision had writes (dry-run ones included).
  virtual void outcome(const DecisionOutcome& outcome) { (void)outcome; }
};

class TV_PLUGIN_API PolicyPlugin : public Plugin {
 public:
  virtual std::unique_ptr<Policy> create(const Params& params, std::string& error) = 0;
};

// ---------------------------------------------------------------------------------------------
// Triggers decide when a continual-training pipeline retrains. A trigger sees the pipeline's
// stream as batches of samples, in stream order, and says at which samples a training starts;
// every evaluation it makes (a drift test, a count check) comes back with its statistics, so
// that a report can show why it fired or why it did not. A firing means: train on the data up
// to and including that sample.

// A batch of the stream: `rows` samples of `dims` features each, row-major, one timestamp per
// row (stream time, Unix ns, non-decreasing across batches), and labels when the stream has
// them. The spans are valid during the call only.
struct SampleBatch {
  std::span<const float> features;  // rows * dims values
  std::size_t rows = 0;
  std::size_t dims = 0;
  std::span<const std::int64_t> time_ns;  // rows values
  std::span<const std::int64_t> labels;   // empty, or rows values
};

// One number behind an evaluation, named for reports ("p_value", "mmd2", "threshold").
struct TriggerStat {
  std::string name;
  double value = 0;
};

// One evaluation a trigger made while observing a batch.
struct TriggerEvaluation {
  std::size_t row = 0;       // the batch row it was made after
  std::int64_t time_ns = 0;  // that row's timestamp
  bool fired = false;        // a training starts on the data up to this row
  std::string reason;        // e.g. "mmd p=0.003 < 0.05 (1000 reference, 1000 current)"
  std::vector<TriggerStat> stats;
};

// What observe() returns: every evaluation of the batch in row order (none when the trigger
// had nothing to evaluate); the ones with `fired` are the firings.
struct TriggerDecision {
  std::vector<TriggerEvaluation> evaluations;
  bool fired() const {
    for (const TriggerEvaluation& e : evaluations) {
      if (e.fired) return true;
    }
    return false;
  }
};

// Drift statistics, computed by the host (tv_drift: Thrust on CPU threads, or on a GPU when the
// host was built with CUDA and has one), so that trigger plugins link nothing of ours.
struct FeatureWindow {
  std::span<const float> values;  // rows * dims, row-major
  std::size_t rows = 0;
  std::size_t dims = 0;
};

struct DriftTestOptions {
  std::string metric = "mmd";             // "mmd" (kernel two-sample test) or "ks" (per feature)
  std::int64_t permutations = 100;        // mmd: permutations of the test (>= 1)
  std::uint64_t seed = 0;                 // mmd: the permutations' seed
  std::string correction = "bonferroni";  // ks: "bonferroni" or "fdr" over the features
};

struct DriftTestResult {
  double distance = 0;             // mmd: the unbiased MMD^2; ks: the largest per-feature statistic
  double p_value = 1;              // mmd: (k + 1) / (B + 1); ks: the corrected smallest p-value
  std::vector<TriggerStat> stats;  // what else a report shows (bandwidth, features drifted)
};

// A reference window prepared for repeated tests (its kernel block, row sums and bandwidth are
// computed once). Made by DriftStatistics::prepare; immutable; usable from one thread at a time.
class TV_PLUGIN_API DriftReference {
 public:
  virtual ~DriftReference() = default;
  virtual std::size_t rows() const = 0;
  virtual std::size_t dims() const = 0;
};

class TV_PLUGIN_API DriftStatistics {
 public:
  virtual ~DriftStatistics() = default;
  // Null with `error` naming the parameter on bad input (an empty window, a NaN, a bad option).
  virtual std::unique_ptr<DriftReference> prepare(const FeatureWindow& reference,
                                                  const DriftTestOptions& options,
                                                  std::string& error) const = 0;
  // Tests `current` against a prepared reference with the options it was prepared with (the
  // permutation count and seed may differ). False with `error` on bad input (dimensions that
  // differ from the reference's, a NaN, an empty window).
  virtual bool test(const DriftReference& reference, const FeatureWindow& current,
                    const DriftTestOptions& options, DriftTestResult& out,
                    std::string& error) const = 0;
};

// Called by one thread at a time; a trigger needs no locking.
class TV_PLUGIN_API Trigger {
 public:
  virtual ~Trigger() = default;
  // Observes the next batch of the stream. A batch it cannot use (dimensions that changed,
  // a NaN, timestamps going back) is refused: false with `error` naming the problem, and the
  // trigger's state is as before the call.
  virtual bool observe(const SampleBatch& batch, TriggerDecision& decision, std::string& error) = 0;
};

// What the host offers a trigger when it creates one.
class TV_PLUGIN_API TriggerServices {
 public:
  virtual ~TriggerServices() = default;
  virtual const DriftStatistics& drift() const = 0;
  // Another loaded trigger plugin's trigger (an ensemble's members): `params` are text values
  // ("500", "0.05", "true", "mmd") converted and validated against that plugin's schema and
  // completed with its defaults. Null with `error` naming the plugin and the parameter.
  virtual std::unique_ptr<Trigger> create_trigger(const std::string& plugin,
                                                  const std::map<std::string, std::string>& params,
                                                  std::string& error) const = 0;
};

class TV_PLUGIN_API TriggerPlugin : public Plugin {
 public:
  // The services outlive the trigger.
  virtual std::unique_ptr<Trigger> create(const Params& params, const TriggerServices& services,
                                          std::string& error) = 0;
};

// ---------------------------------------------------------------------------------------------
// The exported factory. Its call frame is frozen across ABI versions: the host says which ABI it
// speaks, the plugin answers with its own and creates nothing when they differ, so a mismatch
// is reported without touching any other type of this header.

struct FactoryCall {
  std::uint32_t host_abi_version = 0;    // in
  std::uint32_t plugin_abi_version = 0;  // out
  Plugin* plugin = nullptr;              // out: owned by the host; null on failure
  char error[512] = {};                  // out: why plugin is null
};

using FactoryFn = void(FactoryCall*);

inline constexpr const char* kFactoryAlias = "trainvisor_plugin_factory";

namespace detail {

template <class T>
void create(FactoryCall* call) noexcept {
  call->plugin_abi_version = kAbiVersion;
  if (call->host_abi_version != kAbiVersion) return;
  try {
    call->plugin = new T();
  } catch (const std::exception& e) {
    std::snprintf(call->error, sizeof call->error, "constructor threw: %s", e.what());
  } catch (...) {
    std::snprintf(call->error, sizeof call->error, "constructor threw a non-standard exception");
  }
}

}  // namespace detail
}  // namespace tv::plugin

// Ends a plugin's source file: exports the factory of PLUGIN_CLASS.
#define TRAINVISOR_PLUGIN(PLUGIN_CLASS)                    \
  namespace tv_plugin_entry {                              \
  void factory(::tv::plugin::FactoryCall* call) noexcept { \
    ::tv::plugin::detail::create<PLUGIN_CLASS>(call);      \
  }                                                        \
  }                                                        \
  BOOST_DLL_ALIAS(tv_plugin_entry::factory, trainvisor_plugin_factory)
