// A small HTTP/1.1 server and client on Boost.Beast, for the coordinator's API and the programs
// that talk to it (host daemons, the operator CLI).
//
// Server: one acceptor thread and one thread per connection (bounded), synchronous Beast I/O,
// keep-alive, optional TLS (Asio SSL). Routes match "METHOD /path/{param}/..." patterns. A request
// body is read whole up to max_body_bytes (413 beyond), except for routes declared streamed, whose
// handler pulls the body through a BodyStream so an upload never sits in memory. A header block
// over max_header_bytes gets 431, a malformed request 400, an unknown path 404, a known path with
// another method 405: each a JSON error {"error": reason, "status": code}.
//
// Thread-safety: handlers run concurrently on connection threads; they must be thread-safe. A
// Client is one connection and belongs to one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace tv::http {

struct Request {
  std::string method;
  std::string path;  // without the query
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // empty for streamed routes
  std::vector<std::string> params;             // the {param} parts of the route, in order
  std::string header(const std::string& lowercase_name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string file_path;  // when set, the file is streamed as the body (downloads)
  std::vector<std::pair<std::string, std::string>> headers;

  static Response json(int status, const nlohmann::json& body);
  static Response error(int status, const std::string& reason);
  nlohmann::json json_body() const;  // parses body; throws on malformed JSON
};

// The body of a streamed route, pulled by its handler.
class BodyStream {
 public:
  virtual ~BodyStream() = default;
  // Reads up to buf.size() bytes; 0 at the end of the body. Throws std::runtime_error on a
  // broken connection or malformed chunking.
  virtual std::size_t read(std::span<std::byte> buf) = 0;
  virtual std::optional<std::uint64_t> content_length() const = 0;
};

struct Route {
  std::string method;   // "GET", "POST", "PUT", ...
  std::string pattern;  // "/v1/job/{id}/heartbeat"
  std::function<Response(Request&, BodyStream*)> handler;
  bool streamed_body = false;
};

struct ServerOptions {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see Server::port)
  std::size_t max_body_bytes = 1 << 20;
  std::uint32_t max_header_bytes = 16 * 1024;
  std::size_t max_connections = 512;
  std::string tls_cert_file;  // both set: HTTPS
  std::string tls_key_file;
};

class Server {
 public:
  // Binds and starts serving. Throws std::runtime_error naming the address when it cannot bind
  // or the TLS files cannot be used.
  Server(ServerOptions options, std::vector<Route> routes);
  ~Server();  // stops and joins every connection thread
  std::uint16_t port() const noexcept;
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ClientOptions {
  std::string url;      // "http://127.0.0.1:8700" or "https://coordinator:8700"
  std::string ca_file;  // TLS: the CA that signed the server's certificate (empty: system CAs)
  std::chrono::milliseconds timeout{30000};
};

class Client {
 public:
  explicit Client(ClientOptions options);  // throws std::invalid_argument for a bad URL
  ~Client();
  Client(Client&&) noexcept;

  // Throws std::runtime_error when the server cannot be reached or the connection breaks.
  Response request(const std::string& method, const std::string& target,
                   const std::string& body = {},
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
  // PUT or POST of a file, streamed from disk.
  Response send_file(const std::string& method, const std::string& target, const std::string& path,
                     const std::vector<std::pair<std::string, std::string>>& headers = {});
  // GET into a file, streamed to disk. Returns the response (its body empty on success).
  Response download(const std::string& target, const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& headers = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Compares two secrets in time independent of where they differ.
bool tokens_equal(const std::string& a, const std::string& b) noexcept;

}  // namespace tv::http
