// The server's handling of a request's bytes before any handler runs (head limits, the framing
// checks against smuggling, the target's split and percent-decoding, routing, the body up to its
// limit), through the same function the server uses, without a socket. Every refusal must be a
// JSON error whose status matches, and whatever the bytes, a reply that echoes them is valid
// UTF-8 JSON.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "request_head.hpp"

namespace {

using tv::http::BodyStream;
using tv::http::Request;
using tv::http::Response;
using tv::http::Route;

Response ok(Request&, BodyStream*) {
  return Response::json(200, {{"ok", true}});
}

const std::vector<Route>& routes() {
  static const std::vector<Route> r = {
      {"GET", "/v1/health", ok},
      {"POST", "/v1/job/{id}/config", ok},
      {"GET", "/v1/job/{id}/config", ok},
      {"PUT", "/v1/job/{id}/artifact/{name}", ok, true},
      {"GET", "/v1/job/{id}/config/stream", ok, false,
       [](const Request&, tv::http::WebSocketSession&) {}},
  };
  return r;
}

void require(bool condition) {
  if (!condition) std::abort();
}

// Throws (and so fails the run) when `text` is not UTF-8 that JSON can carry.
void require_json_text(const std::string& body) {
  const nlohmann::json j = nlohmann::json::parse(body);
  (void)j.dump();  // strict: throws on a string that is not UTF-8
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  tv::http::ServerOptions o;
  o.max_body_bytes = 4096;
  o.max_header_bytes = 2048;
  const tv::http::ParsedRequest p = tv::http::parse_request(bytes, routes(), o);
  if (p.refusal) {
    require(p.refusal->status >= 400 && p.refusal->status < 600);
    const nlohmann::json j = nlohmann::json::parse(p.refusal->body);
    require(j.at("status") == p.refusal->status);
    require_json_text(p.refusal->body);
    require(!p.complete);  // a refused body may follow a matched route; it is never handled
  }
  if (p.complete) {
    require(p.route != nullptr && !p.refusal);
    require(p.request.method == p.route->method);
    if (!p.route->streamed_body) require(p.request.body.size() <= o.max_body_bytes);
    // What a handler would echo back.
    require_json_text(Response::error(404, "no job " + p.request.path).body);
    for (const auto& [k, v] : p.request.query)
      require_json_text(Response::json(400, {{k, v}}).body);
    for (const auto& param : p.request.params)
      require_json_text(Response::error(400, param).body);
  }
  require_json_text(Response::error(400, std::string(bytes)).body);
  return 0;
}
