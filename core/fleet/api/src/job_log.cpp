#include "trainvisor/fleet/api/job_log.hpp"

#include <stdexcept>

#include "trainvisor/fleet/api/checked.hpp"

namespace tv::fleet::api {

using nlohmann::json;

void to_json(json& j, const JobLog& m) {
  j = {{"job", m.job},
       {"host", m.host ? json(*m.host) : json(nullptr)},
       {"updated_ms", m.updated_ms ? json(*m.updated_ms) : json(nullptr)},
       {"lines", m.lines},
       {"truncated", m.truncated}};
}

void from_json(const json& j, JobLog& m) {
  m.job = required_string(j, "job");
  m.host.reset();
  if (const auto h = j.find("host"); h != j.end() && !h->is_null()) m.host = h->get<std::string>();
  m.updated_ms.reset();
  if (const auto t = j.find("updated_ms"); t != j.end() && !t->is_null())
    m.updated_ms = checked_int(*t, "updated_ms", 0, static_cast<std::int64_t>(kMaxStored));
  m.lines = j.at("lines").get<std::vector<std::string>>();
  if (m.lines.size() > kMaxLogTailLines) {
    throw std::invalid_argument("lines: " + std::to_string(m.lines.size()) +
                                " is over the limit of " + std::to_string(kMaxLogTailLines));
  }
  m.truncated = j.at("truncated").get<bool>();
}

}  // namespace tv::fleet::api
