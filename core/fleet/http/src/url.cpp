#include "url.hpp"

#include <stdexcept>

namespace tv::http {

Url parse_url(const std::string& url) {
  Url u;
  std::string rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    u.tls = true;
    rest = url.substr(8);
  } else {
    throw std::invalid_argument("coordinator URL '" + url +
                                "' must start with http:// or https://");
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  const auto colon = rest.rfind(':');
  u.host = rest.substr(0, colon);
  u.port = colon == std::string::npos ? (u.tls ? "443" : "80") : rest.substr(colon + 1);
  if (u.host.empty() || u.port.empty() ||
      u.port.find_first_not_of("0123456789") != std::string::npos) {
    throw std::invalid_argument("coordinator URL '" + url + "' has no valid host:port");
  }
  return u;
}

boost::asio::ssl::context make_client_tls(const std::string& ca_file) {
  boost::asio::ssl::context tls(boost::asio::ssl::context::tls_client);
  tls.set_verify_mode(boost::asio::ssl::verify_peer);
  boost::system::error_code ec;
  if (ca_file.empty()) {
    tls.set_default_verify_paths(ec);
  } else {
    tls.load_verify_file(ca_file, ec);
  }
  if (ec) throw std::invalid_argument("TLS CA file '" + ca_file + "': " + ec.message());
  return tls;
}

}  // namespace tv::http
