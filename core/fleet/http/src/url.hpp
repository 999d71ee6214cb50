// What the HTTP and WebSocket clients share: the coordinator URL and the client TLS context.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <string>

namespace tv::http {

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
};

// "http://host:port" or "https://host[:port]"; throws std::invalid_argument naming the URL.
Url parse_url(const std::string& url);

// Verifies the server against `ca_file` (empty: the system CAs). Throws std::invalid_argument
// naming the file.
boost::asio::ssl::context make_client_tls(const std::string& ca_file);

}  // namespace tv::http
