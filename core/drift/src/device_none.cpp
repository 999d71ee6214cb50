// A build without CUDA: there is no device path, and nothing to log about it.
#include "device_path.hpp"

namespace tv::drift::device {

bool built() {
  return false;
}

bool available(std::string& about) {
  about = "built without CUDA";
  return false;
}

}  // namespace tv::drift::device
