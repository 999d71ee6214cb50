// The flags that make `trainvisor train` a pipeline training: the window of a stream it trains
// on (segment files the host daemon fetched), where it starts from, and the deployed model it is
// compared with (trainvisor/trainer/trainer.hpp, StreamData). Parsing only; the trainer checks
// the files.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "trainvisor/trainer/trainer.hpp"

namespace tv::cli {

struct StreamFlags {
  trainer::StreamData data;  // as given, but for the two below
  std::string window;        // "B:E"
  std::string sample_shape;  // "1,28,28"
};

// Adds --segment, --stream-first-sample, --window, --sample-shape, --classes, --holdout,
// --eval-set, --initial-weights, --baseline and --stream-epochs to `cmd`, writing into `flags`.
void add_stream_flags(CLI::App& cmd, StreamFlags& flags);

// --sample-shape's "1,28,28" -> {1, 28, 28}; a CLI::ValidationError naming the flag otherwise.
std::vector<std::int64_t> parse_shape(const std::string& text);

// The stream the flags give; nullopt without --segment. Throws CLI::ValidationError naming the
// flag for a stream flag without --segment, a missing --window, --sample-shape or --classes, a
// value that does not parse, or a flag of the model's own data given with --segment.
std::optional<trainer::StreamData> stream_data(const CLI::App& cmd, const StreamFlags& flags);

}  // namespace tv::cli
