// The drift statistics trigger plugins reach through TriggerServices::drift(): tv_drift's MMD and
// Kolmogorov-Smirnov tests behind the plugin API's DriftStatistics interface, every bad input
// an error value naming the parameter (nothing is thrown across the plugin boundary).
#pragma once

#include "trainvisor/plugin.hpp"

namespace tv::drift {

// The process's one instance; stateless, so any thread may use it (a prepared reference is
// used by one thread at a time).
const plugin::DriftStatistics& drift_statistics();

}  // namespace tv::drift
