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
// WebSocket routes (Route::session set) take a GET with an upgrade: the route's handler runs
// first as the admission check (any status but 101 refuses the upgrade with that reply), then the
// session runs on the connection's thread until it returns. The protocol is server-push: the
// server sends text messages; a client sends only its close.
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
#include <stdexcept>
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

// The server's end of an accepted WebSocket, owned by the session's thread.
class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  // Sends one text message. Throws std::runtime_error when the connection broke.
  virtual void send(const std::string& text) = 0;
  // False once the client closed the connection (or sent anything, which it must not) or the
  // server is stopping; the session should return then.
  virtual bool open() = 0;
};

struct Route {
  std::string method;   // "GET", "POST", "PUT", ...
  std::string pattern;  // e.g. "/jobs/{id}/heartbeat": {name} parts become params
  std::function<Response(Request&, BodyStream*)> handler;
  bool streamed_body = false;
  std::function<void(const Request&, WebSocketSession&)> session = nullptr;  // set: WebSocket
};

struct ServerOptions {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see Server::port)
  std::size_t max_body_bytes = 1 << 20;
  std::uint32_t max_header_bytes = 16 * 1024;
  std::size_t max_connections = 512;
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};  // between requests
  std::string tls_cert_file;                                         // both set: HTTPS
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
  std::shared_ptr<Impl> impl_;
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

// The client's end of a server-push WebSocket: connect, then receive text messages.
// receive() runs on one thread; interrupt() may be called from any thread to end it.
class WebSocketClient {
 public:
  // Connects to `target` on `options.url` (ws over http, wss over https) and completes the
  // upgrade. A reply other than 101 throws WebSocketRefused with its status and body; a
  // connection failure throws std::runtime_error.
  WebSocketClient(const ClientOptions& options, const std::string& target,
                  const std::vector<std::pair<std::string, std::string>>& headers = {});
  ~WebSocketClient();

  // The next text message. Throws std::runtime_error when the server closed the connection, it
  // broke, nothing arrived for `idle` (the server went quiet), or interrupt() was called.
  std::string receive(std::chrono::milliseconds idle);
  // Ends a receive() in progress (or the next one) with an error. Thread-safe.
  void interrupt();
  // Sends a close frame (best effort).
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class WebSocketRefused : public std::runtime_error {
 public:
  WebSocketRefused(int status, const std::string& body)
      : std::runtime_error("upgrade refused (" + std::to_string(status) + "): " + body),
        status(status),
        body(body) {}
  int status;
  std::string body;
};

// Compares two secrets in time independent of where they differ.
bool tokens_equal(const std::string& a, const std::string& b) noexcept;

}  // namespace tv::http
