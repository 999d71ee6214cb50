// A stand-in for libcuda.so.1 with the five driver calls the capability probe makes: two devices
// of 8 and 24 GiB. Built with TV_FAKE_CUDA_NO_DEVICE, cuInit fails as on a host whose driver
// sees no device (CUDA_ERROR_NO_DEVICE = 100).
#include <cstddef>
#include <cstring>

extern "C" {

__attribute__((visibility("default"))) int cuInit(unsigned) {
#ifdef TV_FAKE_CUDA_NO_DEVICE
  return 100;
#else
  return 0;
#endif
}

__attribute__((visibility("default"))) int cuDeviceGetCount(int* n) {
  *n = 2;
  return 0;
}

__attribute__((visibility("default"))) int cuDeviceGet(int* dev, int ordinal) {
  *dev = ordinal;
  return ordinal >= 0 && ordinal < 2 ? 0 : 101;  // CUDA_ERROR_INVALID_DEVICE
}

__attribute__((visibility("default"))) int cuDeviceTotalMem_v2(std::size_t* bytes, int dev) {
  *bytes = (dev == 0 ? std::size_t{8} : std::size_t{24}) << 30;
  return 0;
}

__attribute__((visibility("default"))) int cuDeviceGetName(char* name, int len, int dev) {
  std::strncpy(name, dev == 0 ? "Fake GPU 8G" : "Fake GPU 24G", static_cast<std::size_t>(len));
  return 0;
}
}
