#include "stream_flags.hpp"

#include <charconv>
#include <tuple>

namespace tv::cli {
namespace {

constexpr const char* kStreamFlags[] = {"--stream-first-sample",
                                        "--window",
                                        "--sample-shape",
                                        "--classes",
                                        "--holdout",
                                        "--eval-set",
                                        "--baseline",
                                        "--initial-weights",
                                        "--stream-epochs"};

std::int64_t parse_index(const std::string& text, const std::string& flag,
                         const std::string& value) {
  std::int64_t n = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (err != std::errc() || end != text.data() + text.size() || text.empty()) {
    throw CLI::ValidationError(flag, "'" + value + "': '" + text + "' is not an integer");
  }
  return n;
}

// "B:E" -> {B, E}.
std::pair<std::int64_t, std::int64_t> parse_window(const std::string& text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    throw CLI::ValidationError("--window", "'" + text + "': expected B:E (stream indexes)");
  }
  return {parse_index(text.substr(0, colon), "--window", text),
          parse_index(text.substr(colon + 1), "--window", text)};
}

}  // namespace

std::vector<std::int64_t> parse_shape(const std::string& text) {
  std::vector<std::int64_t> out;
  std::size_t begin = 0;
  while (true) {
    const auto comma = text.find(',', begin);
    out.push_back(parse_index(text.substr(begin, comma - begin), "--sample-shape", text));
    if (comma == std::string::npos) return out;
    begin = comma + 1;
  }
}

void add_stream_flags(CLI::App& cmd, StreamFlags& f) {
  const auto add = [&cmd](const std::string& flag, auto& target, const std::string& help) {
    return cmd.add_option(flag, target, help)->group("Pipeline training (a window of a stream)");
  };
  add("--segment", f.data.segment_files,
      "A segment file of the stream (repeatable, in stream order): train on a window of these "
      "instead of the model's own data")
      ->option_text("FILE");
  add("--stream-first-sample", f.data.first_sample,
      "The stream index of the first segment's first sample (default 0)");
  add("--window", f.window,
      "B:E: the stream samples [B, E) trained and evaluated on (required with --segment)");
  add("--sample-shape", f.sample_shape,
      "One sample's shape, e.g. 1,28,28; every segment's must match (required with --segment)");
  add("--classes", f.data.num_classes, "Number of classes: labels are below it (required)");
  add("--holdout", f.data.holdout,
      "The window's last share held out for evaluation, not trained on (default 0.1; at least "
      "one sample when above 0)");
  add("--eval-set", f.data.eval_set_file,
      "An evaluation batch (the segment format) scored beside the holdout")
      ->option_text("FILE");
  add("--initial-weights", f.data.initial_weights,
      "A bundle of this model to start from (default: the model's initialisation)")
      ->option_text("BUNDLE");
  add("--baseline", f.data.baseline,
      "The deployed model's bundle, scored on the same evaluation data as the new model "
      "(evaluation.json's \"deployed\")")
      ->option_text("BUNDLE");
  add("--stream-epochs", f.data.epochs,
      "Epochs to train: sets training/control/max_epochs, as --max-epochs does (default 1; 0: "
      "score and bundle the starting weights)");
}

std::optional<trainer::StreamData> stream_data(const CLI::App& cmd, const StreamFlags& f) {
  if (cmd.count("--segment") == 0) {
    for (const char* flag : kStreamFlags) {
      if (cmd.count(flag) > 0) throw CLI::ValidationError(flag, "it needs --segment");
    }
    return std::nullopt;
  }
  for (const char* flag : {"--window", "--sample-shape", "--classes"}) {
    if (cmd.count(flag) == 0) throw CLI::ValidationError(flag, "required with --segment");
  }
  const std::pair<const char*, const char*> excluded[] = {
      {"--data-dir", "the data come from the segments"},
      {"--max-train-samples", "the window says which samples are trained on"},
      {"--max-val-samples", "--holdout and --eval-set say which samples are evaluated on"},
      {"--max-epochs", "--stream-epochs sets the epochs of a pipeline training"},
      {"--replay-config", "a bundle records no stream window to replay"}};
  for (const auto& [flag, why] : excluded) {
    if (cmd.count(flag) > 0)
      throw CLI::ValidationError(flag, std::string("cannot go with --segment: ") + why);
  }
  trainer::StreamData d = f.data;
  std::tie(d.window_begin, d.window_end) = parse_window(f.window);
  d.sample_shape = parse_shape(f.sample_shape);
  return d;
}

}  // namespace tv::cli
