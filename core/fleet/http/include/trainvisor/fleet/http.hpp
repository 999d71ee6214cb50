// A small HTTP/1.1 server and client on Boost.Beast, for the coordinator's API and the programs
// that talk to it (host daemons, the operator CLI).
//
// Server: asynchronous Beast I/O on one io_context run by a few threads (io_threads), so an idle
// or slow connection costs a socket and a little memory, never a thread. Every wait has a
// deadline: a request head must arrive whole within head_timeout of its first byte (and a TLS
// handshake within head_timeout), a body and a response move at least min_transfer_rate bytes/s
// after a grace of transfer_timeout (and no single wait lasts longer), and a kept-alive connection
// waits idle_timeout for its next request. Connections are capped in all (max_connections) and
// per remote address (max_connections_per_peer, loopback included); a refused connection gets a
// 503 saying why (plain HTTP) or is closed at once (TLS).
//
// Handlers are synchronous and may block (SQLite): they run on a fixed pool of handler_threads,
// never on an I/O thread. A request body is read whole before its handler runs, up to
// max_body_bytes (413 beyond), except for routes declared streamed, whose handler pulls the body
// through a BodyStream so an upload never sits in memory; each read blocks the handler's thread
// under the same deadlines. Routes match "METHOD /path/{param}/..." patterns.
//
// Framing is strict (RFC 9112): a Transfer-Encoding other than "chunked" (501), Transfer-Encoding
// with Content-Length, repeated Content-Length, HTTP/1.1 without Host, and what Beast refuses
// (400); after any such reply the connection is closed, so a body is never read as a request. A
// header block over max_header_bytes gets 431, an unknown path 404, a known path with another
// method 405. Every request gets an answer: errors are JSON {"error": reason, "status": code},
// valid UTF-8 whatever the client sent (other bytes show as \xNN), and a handler whose reply
// cannot be sent is answered 500.
//
// WebSocket routes (Route::session set) take a GET with an upgrade: the route's handler runs
// first as the admission check (any status but 101 refuses the upgrade with that reply), then the
// session function runs on a thread of its own (at most max_websocket_sessions at once, 503
// beyond) until it returns. The server sends text messages, queued and written by the I/O
// threads under write deadlines; pings from the client are answered and its pongs ignored; a
// data frame from it ends the session unless the route takes client messages (then the session
// receives them); a client that does not read (more than max_websocket_queue_bytes waiting, or a
// write stalled past transfer_timeout) is cut off.
//
// Thread-safety: handlers run concurrently on the handler pool; they must be thread-safe. A
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
#include <string_view>
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
  // Extra headers of a reply; a Client's response lists every header the server sent.
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

// The server's end of an accepted WebSocket, used by the session's thread.
class WebSocketSession {
 public:
  virtual ~WebSocketSession() = default;
  // Queues one text message for the I/O threads to send; does not wait for the client. Throws
  // std::runtime_error when the connection is closed or broke, or the client reads so slowly that
  // the queue would exceed max_websocket_queue_bytes (the connection is then cut off).
  virtual void send(const std::string& text) = 0;
  // False once the client closed the connection (or sent a data frame on a route that takes
  // none), it was cut off, or the server is stopping; the session should return then.
  virtual bool open() = 0;
  // On a route with client_messages: the client's next text message, waiting at most `timeout`;
  // nullopt when none came (or the session ended: see open()). Elsewhere always nullopt.
  virtual std::optional<std::string> receive(std::chrono::milliseconds timeout) = 0;
  // Ends the session with a close frame of code 1008 (policy violation) giving `reason` (cut to
  // 123 bytes), after the messages already queued. The session function should return then.
  virtual void close(const std::string& reason) = 0;
};

struct Route {
  std::string method;   // "GET", "POST", "PUT", ...
  std::string pattern;  // e.g. "/jobs/{id}/heartbeat": {name} parts become params
  std::function<Response(Request&, BodyStream*)> handler;
  bool streamed_body = false;
  std::function<void(const Request&, WebSocketSession&)> session = nullptr;  // set: WebSocket
  // A WebSocket route whose client sends messages (WebSocketSession::receive); at most 16 wait
  // unread, of at most 64 KiB each (the client is cut off beyond).
  bool client_messages = false;
};

// One answered request, as ServerOptions::on_request sees it: the route's pattern (never the raw
// path, which holds ids), the method, the status sent and the time from the request's head to
// its answer being handed to the connection (the body's reading and the handler included).
struct RequestObservation {
  std::string_view pattern;
  std::string_view method;
  int status = 0;
  std::chrono::nanoseconds duration{0};
};

struct ServerOptions {
  std::string bind = "127.0.0.1";
  std::uint16_t port = 0;  // 0: any free port (see Server::port)
  std::size_t max_body_bytes = 1 << 20;
  std::uint32_t max_header_bytes = 16 * 1024;
  std::size_t max_connections = 1024;         // in all; the process's open-file limit is raised
  std::size_t max_connections_per_peer = 64;  // from one remote IP address (loopback included)
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(60)};  // between requests
  std::chrono::milliseconds head_timeout{std::chrono::seconds(10)};  // from a head's first byte
  // Bodies and responses: no wait for the peer lasts longer than transfer_timeout, and beyond
  // that grace the transfer averages at least min_transfer_rate bytes per second.
  std::chrono::milliseconds transfer_timeout{std::chrono::seconds(10)};
  std::uint64_t min_transfer_rate = 1024;
  std::size_t io_threads = 2;
  std::size_t handler_threads = 16;
  std::size_t max_websocket_sessions = 128;
  std::size_t max_websocket_queue_bytes = 4 << 20;
  std::string tls_cert_file;  // both set: HTTPS
  std::string tls_key_file;
  // Headers every HTTP response carries (the server's own errors included); a route's header
  // of the same name replaces one of these.
  std::vector<std::pair<std::string, std::string>> response_headers;
  // Called once for every request that matched a route, whatever its answer (a handler's, a 413,
  // a WebSocket's 101); requests that matched none (404, 405, malformed) are not seen. It runs on
  // an I/O thread, so it must be quick; an exception from it is ignored. Metrics hook in here, so
  // that this library depends on none.
  std::function<void(const RequestObservation&)> on_request;
};

class Server {
 public:
  // Binds and starts serving (raising the process's soft open-file limit to its hard limit).
  // Throws std::runtime_error naming the address when it cannot bind or the TLS files cannot be
  // used.
  Server(ServerOptions options, std::vector<Route> routes);
  ~Server();  // stops: closes every connection and joins every thread
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

// The client's end of a WebSocket: connect, then receive (and, where the route takes them, send)
// text messages. receive() and send() run on one thread; interrupt() may be called from any thread
// to end it.
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
  // A close from the server says its code and reason in the error.
  std::string receive(std::chrono::milliseconds idle);
  // Sends one text message (a route that takes client messages). Throws std::runtime_error when
  // the connection broke or the send took longer than the options' timeout.
  void send(const std::string& text);
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
