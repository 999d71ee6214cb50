// The GPU path's entry points, implemented by device_cuda.cu in a CUDA build and by
// device_none.cpp otherwise. Private to tv_drift.
#pragma once

#include <string>

namespace tv::drift::device {

// True when this build has the CUDA path.
bool built();
// True when a CUDA device answers; `about` is then its name, else why there is none.
bool available(std::string& about);

}  // namespace tv::drift::device
