// What the server does with a request before any handler runs, with no socket involved: the
// framing checks that keep a request's body from being read as another request (RFC 9112), the
// target's split and percent-decoding, route matching, and reply text made safe for JSON. The
// server and the fuzz target share it. Private to tv_http.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "beast.hpp"
#include "trainvisor/fleet/http.hpp"

namespace tv::http {

using HeadParser = bhttp::request_parser<bhttp::empty_body>;

std::string lower(std::string s);

// `text` with every byte that is not part of well-formed UTF-8 written as \xNN, so that it can go
// into a JSON reply and still says which bytes came.
std::string escape_invalid_utf8(std::string_view text);

// The reply to a head that could not be read (431 over the header limit, 400 otherwise).
Response head_error(const beast::error_code& ec, const ServerOptions& options);

// 413 for a body over options.max_body_bytes.
Response body_too_large(const ServerOptions& options);

// The reply to a head whose framing cannot be trusted; nullopt when it can. Refused: a
// Transfer-Encoding other than exactly "chunked" (501 for a coding this server does not decode,
// 400 for chunked applied twice or not last), Transfer-Encoding with Content-Length or in an
// HTTP/1.0 request, more than one Content-Length, an HTTP/1.1 request without exactly one Host.
// (Beast itself refuses a version other than 1.0 and 1.1, bare LF line ends and malformed
// fields.)
std::optional<Response> check_framing(const bhttp::request_header<>& h);

// Fills `req` (method, path, query, headers, params) from the head and finds its route: nullptr
// with the 404/405 reply in `refusal` when none fits.
struct Routed {
  const Route* route = nullptr;
  std::optional<Response> refusal;
};
Routed route_request(const bhttp::request_header<>& h, const std::vector<Route>& routes,
                     Request& req);

// One request read from `bytes` the way the server reads it from a socket (head, checks, route,
// body up to options.max_body_bytes for a route that is not streamed): the refusal the server
// would send, or the request a handler would get. `complete` is false when more bytes are needed.
struct ParsedRequest {
  std::optional<Response> refusal;
  Request request;
  const Route* route = nullptr;
  bool complete = false;
};
ParsedRequest parse_request(std::string_view bytes, const std::vector<Route>& routes,
                            const ServerOptions& options);

}  // namespace tv::http
