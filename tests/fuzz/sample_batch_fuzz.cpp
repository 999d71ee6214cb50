// The stream codec on arbitrary bytes, as a client may post them to /v1/pipeline/{name}/samples:
// decode_batch must accept or refuse with a BatchError, never read out of bounds, crash or
// allocate for sizes the body does not hold. An accepted batch must survive its canonical
// encoding unchanged, and that encoding must be a fixed point.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace {

using tv::fleet::pipelines::BatchError;
using tv::fleet::pipelines::BatchLimits;
using tv::fleet::pipelines::SampleBatchData;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "%s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Limits small enough that no input makes the fuzzer allocate much.
  const BatchLimits limits{.max_bytes = std::size_t{1} << 20, .max_rows = 4096, .max_dims = 4096};
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  SampleBatchData batch;
  try {
    batch = tv::fleet::pipelines::decode_batch(body, limits);
  } catch (const BatchError&) {
    return 0;
  }
  if (batch.rows == 0 || batch.features.size() != batch.rows * batch.dims() ||
      batch.labels.size() != batch.rows || batch.time_ns.size() != batch.rows)
    fail("an accepted batch whose arrays disagree");
  const std::string canonical = tv::fleet::pipelines::encode_batch(batch);
  if (!(tv::fleet::pipelines::decode_batch(canonical) == batch)) fail("unstable round trip");
  if (tv::fleet::pipelines::encode_batch(tv::fleet::pipelines::decode_batch(canonical)) !=
      canonical)
    fail("the canonical encoding is not a fixed point");
  if (!(tv::fleet::pipelines::concatenate({batch}) == batch)) fail("concatenate of one part");
  return 0;
}
