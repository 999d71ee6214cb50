// The project's version and the versions of what it was built against, for `--version` and
// for logs that must say which build produced them.
#pragma once

#include <string>

namespace tv {

// "0.1.0"
const char* version() noexcept;
// One line per component: trainvisor, compiler, Boost.
std::string version_report();

}  // namespace tv
