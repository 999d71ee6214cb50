#include "trainvisor/core/version.hpp"

#include <boost/version.hpp>
#include <string>

namespace tv {

const char* version() noexcept {
  return TV_VERSION;
}

std::string version_report() {
  std::string out = std::string("trainvisor ") + TV_VERSION + "\n";
  out += "compiler: " __VERSION__ "\n";
  out += "boost: " + std::to_string(BOOST_VERSION / 100000) + "." +
         std::to_string(BOOST_VERSION / 100 % 1000) + "\n";
  return out;
}

}  // namespace tv
