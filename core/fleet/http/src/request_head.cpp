#include "request_head.hpp"

namespace tv::http {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

void split_target(std::string_view target, Request& r) {
  const auto q = target.find('?');
  r.path = url_decode(target.substr(0, q));
  if (q == std::string_view::npos) return;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const auto eq = kv.find('=');
    r.query[url_decode(kv.substr(0, eq))] =
        eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
}

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view{} : path.substr(slash);
  }
  return out;
}

// True when `path` fits `pattern`; fills the {param} values.
bool match(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
  const auto p = segments(pattern), s = segments(path);
  if (p.size() != s.size()) return false;
  std::vector<std::string> out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i].size() >= 2 && p[i].front() == '{' && p[i].back() == '}') {
      out.emplace_back(s[i]);
    } else if (p[i] != s[i]) {
      return false;
    }
  }
  params = std::move(out);
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

// The transfer codings of every Transfer-Encoding field, in order, lowercased.
std::vector<std::string> transfer_codings(const bhttp::request_header<>& h) {
  std::vector<std::string> out;
  for (auto [it, end] = h.equal_range(bhttp::field::transfer_encoding); it != end; ++it) {
    std::string_view v(it->value().data(), it->value().size());
    while (true) {
      const auto comma = v.find(',');
      out.push_back(lower(std::string(trim(v.substr(0, comma)))));
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return out;
}

std::optional<Response> check_transfer_encoding(const bhttp::request_header<>& h) {
  const std::vector<std::string> codings = transfer_codings(h);
  if (h.count(bhttp::field::content_length) > 0) {
    return Response::error(400, "a request with both Transfer-Encoding and Content-Length");
  }
  if (h.version() < 11) return Response::error(400, "Transfer-Encoding in an HTTP/1.0 request");
  for (std::size_t i = 0; i < codings.size(); ++i) {
    if (codings[i] == "chunked" && i + 1 < codings.size()) {
      return Response::error(400, "Transfer-Encoding applies chunked before another coding");
    }
    if (codings[i] != "chunked") {
      return Response::error(
          501, "Transfer-Encoding '" + codings[i] + "' is not supported (only chunked is)");
    }
  }
  return std::nullopt;
}

}  // namespace

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Response head_error(const beast::error_code& ec, const ServerOptions& options) {
  if (ec == bhttp::error::header_limit) {
    return Response::error(431, "request header fields larger than " +
                                    std::to_string(options.max_header_bytes) + " bytes");
  }
  return Response::error(400, "malformed request: " + ec.message());
}

Response body_too_large(const ServerOptions& options) {
  return Response::error(
      413, "request body larger than " + std::to_string(options.max_body_bytes) + " bytes");
}

std::optional<Response> check_framing(const bhttp::request_header<>& h) {
  if (h.count(bhttp::field::transfer_encoding) > 0) {
    if (auto bad = check_transfer_encoding(h)) return bad;
  }
  if (h.count(bhttp::field::content_length) > 1) {
    return Response::error(400, "more than one Content-Length");
  }
  const std::size_t hosts = h.count(bhttp::field::host);
  if (hosts > 1) return Response::error(400, "more than one Host");
  if (h.version() == 11 && hosts == 0)
    return Response::error(400, "an HTTP/1.1 request without Host");
  return std::nullopt;
}

Routed route_request(const bhttp::request_header<>& h, const std::vector<Route>& routes,
                     Request& req) {
  req.method = std::string(h.method_string());
  split_target(std::string_view(h.target().data(), h.target().size()), req);
  for (const auto& f : h)
    req.headers[lower(std::string(f.name_string()))] = std::string(f.value());
  bool path_known = false;
  for (const Route& r : routes) {
    std::vector<std::string> params;
    if (!match(r.pattern, req.path, params)) continue;
    path_known = true;
    if (r.method == req.method) {
      req.params = std::move(params);
      return {&r, std::nullopt};
    }
  }
  return {nullptr, path_known
                       ? Response::error(405, req.method + " is not allowed on " + req.path)
                       : Response::error(404, "no such endpoint: " + req.method + " " + req.path)};
}

ParsedRequest parse_request(std::string_view bytes, const std::vector<Route>& routes,
                            const ServerOptions& options) {
  ParsedRequest out;
  HeadParser head;
  head.header_limit(options.max_header_bytes);
  head.body_limit(boost::none);
  beast::error_code ec;
  while (!head.is_header_done()) {
    const std::size_t used = head.put(asio::buffer(bytes.data(), bytes.size()), ec);
    bytes.remove_prefix(used);
    if (ec == bhttp::error::need_more) return out;
    if (ec) {
      out.refusal = head_error(ec, options);
      return out;
    }
  }
  if ((out.refusal = check_framing(head.get()))) return out;
  Routed routed = route_request(head.get(), routes, out.request);
  if ((out.refusal = std::move(routed.refusal))) return out;
  out.route = routed.route;
  if (out.route->streamed_body) {  // the handler pulls the body
    out.complete = true;
    return out;
  }
  if (const auto n = head.content_length(); n && *n > options.max_body_bytes) {
    out.refusal = body_too_large(options);
    return out;
  }
  bhttp::request_parser<bhttp::string_body> body(std::move(head));
  body.body_limit(options.max_body_bytes);
  while (!body.is_done()) {
    const std::size_t used = body.put(asio::buffer(bytes.data(), bytes.size()), ec);
    bytes.remove_prefix(used);
    if (ec == bhttp::error::need_more || (!ec && used == 0)) return out;
    if (ec) {
      out.refusal = ec == bhttp::error::body_limit
                        ? body_too_large(options)
                        : Response::error(400, "malformed request body: " + ec.message());
      return out;
    }
  }
  out.request.body = std::move(body.get().body());
  out.complete = true;
  return out;
}

}  // namespace tv::http
