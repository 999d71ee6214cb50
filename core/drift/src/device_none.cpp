// A build without CUDA: there is no device path, and nothing to log about it. backend() never
// picks the device here, so the MMD's device functions are unreachable: reaching one is a broken
// invariant.
#include <stdexcept>

#include "device_path.hpp"

namespace tv::drift::device {
namespace {

[[noreturn]] void no_device_path(const char* function) {
  throw std::logic_error(std::string("tv_drift: ") + function +
                         " called in a build without CUDA (backend() never picks the device here)");
}

}  // namespace

struct Reference {};

bool built() {
  return false;
}

bool available(std::string& about) {
  about = "built without CUDA";
  return false;
}

void ReferenceDeleter::operator()(Reference* reference) const {
  delete reference;
}

ReferenceHandle upload_reference(const float*, std::size_t, std::size_t) {
  no_device_path("upload_reference");
}

void sampled_gram(const Reference&, std::size_t, std::vector<float>&, std::vector<float>&) {
  no_device_path("sampled_gram");
}

double finish_reference(Reference&, float) {
  no_device_path("finish_reference");
}

std::vector<double> set_permutations(Reference&, const std::vector<float>&,
                                     const std::vector<float>&, std::size_t, std::size_t) {
  no_device_path("set_permutations");
}

PooledSums pooled_sums(const Reference&, const float*, std::size_t) {
  no_device_path("pooled_sums");
}

}  // namespace tv::drift::device
