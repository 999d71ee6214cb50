#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "beast.hpp"
#include "large_file_body.hpp"
#include "trainvisor/fleet/http.hpp"

namespace tv::http {
namespace {

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
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

template <class Stream>
tcp::socket& lowest(Stream& s) {
  if constexpr (std::is_same_v<Stream, tcp::socket>) {
    return s;
  } else {
    return s.next_layer();
  }
}

// A body with a Content-Length (and no chunked coding) is plain bytes: it is read straight into
// the handler's buffer, first what reading the header already took from the socket, then from
// the socket, as much as the buffer holds per read. Through the parser every piece would be read
// into the connection's buffer (in reads the size of its free capacity, as little as 512 bytes)
// and copied once more. A chunked body goes through the parser.
template <class Stream>
class StreamedBody final : public BodyStream {
 public:
  StreamedBody(Stream& stream, beast::flat_buffer& buffer,
               bhttp::request_parser<bhttp::buffer_body>& parser)
      : stream_(stream), buffer_(buffer), parser_(parser) {
    if (!parser_.chunked() && parser_.content_length()) {
      remaining_ = *parser_.content_length();
    } else {
      buffer_.reserve(64 * 1024);  // read_some's largest read
    }
  }
  std::size_t read(std::span<std::byte> buf) override {
    if (remaining_) return read_plain(buf);
    while (!parser_.is_done()) {
      parser_.get().body().data = buf.data();
      parser_.get().body().size = buf.size();
      beast::error_code ec;
      bhttp::read_some(stream_, buffer_, parser_, ec);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) throw std::runtime_error("reading the request body: " + ec.message());
      const std::size_t got = buf.size() - parser_.get().body().size;
      if (got > 0) return got;
    }
    return 0;
  }
  std::optional<std::uint64_t> content_length() const override {
    if (auto n = parser_.content_length()) return *n;
    return std::nullopt;
  }
  bool done() const { return remaining_ ? *remaining_ == 0 : parser_.is_done(); }

 private:
  std::size_t read_plain(std::span<std::byte> buf) {
    std::uint64_t& remaining = *remaining_;
    if (remaining == 0 || buf.empty()) return 0;
    const auto into = asio::buffer(
        buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining)));
    std::size_t got = 0;
    if (buffer_.size() > 0) {
      got = asio::buffer_copy(into, buffer_.data());
      buffer_.consume(got);
    } else {
      beast::error_code ec;
      got = stream_.read_some(into, ec);
      // The parser's words for a body cut short (what it says when its read meets the end).
      if (ec == asio::error::eof) ec = bhttp::error::partial_message;
      if (ec) throw std::runtime_error("reading the request body: " + ec.message());
    }
    remaining -= got;
    return got;
  }

  Stream& stream_;
  beast::flat_buffer& buffer_;
  bhttp::request_parser<bhttp::buffer_body>& parser_;
  std::optional<std::uint64_t> remaining_;  // set: read past the parser
};

// The server's end of an upgraded connection. The client only ever sends its close, so any bytes
// from it mean the session is over.
template <class WebSocketStream>
class Session final : public WebSocketSession {
 public:
  Session(WebSocketStream& ws, int fd, const std::atomic<bool>& stopping)
      : ws_(ws), fd_(fd), stopping_(stopping) {}
  void send(const std::string& text) override {
    if (closed_) throw std::runtime_error("websocket: closed");
    beast::error_code ec;
    ws_.text(true);
    ws_.write(asio::buffer(text), ec);
    if (ec) {
      closed_ = true;
      throw std::runtime_error("websocket: " + ec.message());
    }
  }
  bool open() override {
    if (closed_ || stopping_.load()) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) {
      closed_ = true;
      beast::flat_buffer drop;
      beast::error_code ec;
      ws_.read(drop, ec);  // answers a close frame
    }
    return !closed_;
  }
  bool closed() const { return closed_; }

 private:
  WebSocketStream& ws_;
  int fd_;
  const std::atomic<bool>& stopping_;
  bool closed_ = false;
};

}  // namespace

std::string Request::header(const std::string& name) const {
  const auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

Response Response::json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.body = body.dump();
  return r;
}

Response Response::error(int status, const std::string& reason) {
  return json(status, {{"error", reason}, {"status", status}});
}

nlohmann::json Response::json_body() const {
  return nlohmann::json::parse(body);
}

bool tokens_equal(const std::string& a, const std::string& b) noexcept {
  // Every byte of the longer string is visited whatever the contents, so the time says nothing
  // about where (or whether) they differ, only about their lengths.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0 && n > 0;
}

// Shared with every connection thread: a detached thread that has just reported its end to stop()
// still destroys its socket, which belongs to this io_context.
struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  ServerOptions options;
  std::vector<Route> routes;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::optional<asio::ssl::context> tls;
  std::thread accept_thread;
  std::atomic<bool> stopping{false};
  std::mutex mu;
  std::condition_variable idle;
  std::set<tcp::socket*> open;  // sockets of live connections, closed by stop()
  std::size_t connections = 0;

  void accept_loop() {
    while (!stopping.load()) {
      pollfd p{acceptor.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      beast::error_code ec;
      tcp::socket socket(io);
      acceptor.accept(socket, ec);
      if (ec) continue;
      std::unique_lock lock(mu);
      if (connections >= options.max_connections) {
        lock.unlock();
        reply_and_close(socket, Response::error(503, "too many connections"));
        continue;
      }
      ++connections;
      lock.unlock();
      auto owned = std::make_unique<tcp::socket>(std::move(socket));
      std::thread([self = shared_from_this(), owned = std::move(owned)]() mutable {
        self->connection(std::move(*owned));
        owned.reset();  // while `self` keeps the io_context alive
      }).detach();
    }
  }

  void reply_and_close(tcp::socket& socket, const Response& r) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), 11};
    res.set(bhttp::field::content_type, r.content_type);
    res.set(bhttp::field::connection, "close");
    res.body() = r.body;
    res.prepare_payload();
    beast::error_code ec;
    bhttp::write(socket, res, ec);
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }

  void connection(tcp::socket socket) {
    try {
      if (tls) {
        asio::ssl::stream<tcp::socket> stream(std::move(socket), *tls);
        track(&stream.next_layer());
        beast::error_code ec;
        stream.handshake(asio::ssl::stream_base::server, ec);
        if (!ec) serve(stream);
        untrack(&stream.next_layer());
        // No TLS close_notify exchange: it waits for the peer's, which a kept-alive client that
        // is still connected never sends. The client sees the connection end either way.
        stream.next_layer().shutdown(tcp::socket::shutdown_both, ec);
      } else {
        track(&socket);
        serve(socket);
        untrack(&socket);
        if (stopping.load()) {
          beast::error_code ec;
          socket.shutdown(tcp::socket::shutdown_both, ec);  // no early reply to protect now
        } else {
          linger(socket);
        }
      }
    } catch (...) {
      // A connection's failure is that connection's alone.
    }
    std::lock_guard lock(mu);
    --connections;
    idle.notify_all();
  }

  // A reply sent before the whole request body was read (413, 401, a refused upload) must reach
  // a client that is still sending: close our side for writing, then read and drop what keeps
  // arriving until a second passes without any, so that the kernel does not answer it with a
  // reset that would destroy the reply in the client's buffer.
  static void linger(tcp::socket& socket) {
    beast::error_code ec;
    socket.shutdown(tcp::socket::shutdown_send, ec);
    char sink[64 * 1024];
    std::size_t dropped = 0;
    // Bounded by poll, not by a socket receive timeout, which Asio's synchronous reads ignore: a
    // kept-alive peer that neither sends nor closes must not hold this thread (and stop()).
    while (dropped < (std::size_t{256} << 20)) {
      pollfd p{socket.native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 1000) <= 0) break;
      const std::size_t n = socket.read_some(asio::buffer(sink), ec);
      if (ec || n == 0) break;
      dropped += n;
    }
    socket.close(ec);
  }

  void track(tcp::socket* s) {
    std::lock_guard lock(mu);
    open.insert(s);
  }
  void untrack(tcp::socket* s) {
    std::lock_guard lock(mu);
    open.erase(s);
  }

  template <class Stream>
  bool write(Stream& stream, const Response& r, bool keep_alive) {
    beast::error_code ec;
    if (!r.file_path.empty()) {
      bhttp::response<LargeFileBody> res{static_cast<bhttp::status>(r.status), 11};
      res.body().open_read(r.file_path, ec);
      if (ec) return write(stream, Response::error(500, "cannot open " + r.file_path), false);
      res.set(bhttp::field::content_type, r.content_type);
      for (const auto& [k, v] : r.headers)
        res.set(k, v);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      bhttp::write(stream, res, ec);
    } else {
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(r.status), 11};
      res.set(bhttp::field::content_type, r.content_type);
      for (const auto& [k, v] : r.headers)
        res.set(k, v);
      res.keep_alive(keep_alive);
      res.body() = r.body;
      res.prepare_payload();
      bhttp::write(stream, res, ec);
    }
    return !ec;
  }

  // An idle keep-alive peer must not hold a connection thread forever: wait for its next request
  // at most idle_timeout. (Socket receive timeouts do not bound Asio's synchronous reads.)
  template <class Stream>
  bool next_request_arrives(Stream& stream, const beast::flat_buffer& buffer) {
    if (buffer.size() > 0) return true;
    if constexpr (!std::is_same_v<Stream, tcp::socket>) {
      // Bytes the TLS layer already took from the socket (in OpenSSL's record buffer, or in the
      // BIO through which Asio feeds it) are not seen by poll.
      SSL* ssl = stream.native_handle();
      if (SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0) return true;
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(options.idle_timeout);
    pollfd p{lowest(stream).native_handle(), POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(ms.count())) > 0;
  }

  template <class Stream>
  void serve(Stream& stream) {
    beast::flat_buffer buffer;
    while (!stopping.load()) {
      if (!next_request_arrives(stream, buffer)) return;
      bhttp::request_parser<bhttp::empty_body> head;
      head.header_limit(options.max_header_bytes);
      head.body_limit(boost::none);
      beast::error_code ec;
      bhttp::read_header(stream, buffer, head, ec);
      if (ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
          ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated ||
          ec == asio::error::operation_aborted) {
        return;
      }
      if (ec == bhttp::error::header_limit) {
        write(stream,
              Response::error(431, "request header fields larger than " +
                                       std::to_string(options.max_header_bytes) + " bytes"),
              false);
        return;
      }
      if (ec) {
        write(stream, Response::error(400, "malformed request: " + ec.message()), false);
        return;
      }
      const auto& h = head.get();
      Request req;
      req.method = std::string(h.method_string());
      split_target(std::string_view(h.target().data(), h.target().size()), req);
      for (const auto& f : h)
        req.headers[lower(std::string(f.name_string()))] = std::string(f.value());
      const bool keep_alive = h.keep_alive();

      const Route* route = nullptr;
      bool path_known = false;
      for (const Route& r : routes) {
        std::vector<std::string> params;
        if (!match(r.pattern, req.path, params)) continue;
        path_known = true;
        if (r.method == req.method) {
          route = &r;
          req.params = std::move(params);
          break;
        }
      }
      if (route == nullptr) {
        // The body (if any) was not read: the connection cannot be reused.
        write(stream,
              path_known ? Response::error(405, req.method + " is not allowed on " + req.path)
                         : Response::error(404, "no such endpoint: " + req.method + " " + req.path),
              false);
        return;
      }
      if (route->session) {
        upgrade(stream, buffer, head, req, *route);
        return;
      }
      if (lower(req.header("expect")) == "100-continue") {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
        bhttp::write(stream, cont, ec);
      }
      Response res;
      bool reusable = keep_alive;
      if (route->streamed_body) {
        bhttp::request_parser<bhttp::buffer_body> parser(std::move(head));
        parser.body_limit(boost::none);  // the handler enforces its own limit as it reads
        StreamedBody<Stream> body(stream, buffer, parser);
        res = call(*route, req, &body);
        reusable = reusable && body.done();
      } else {
        // The parser checks a body limit against Content-Length only while it reads the header,
        // which happened before the route (and so the limit) was known.
        if (const auto n = head.content_length(); n && *n > options.max_body_bytes) {
          write(stream,
                Response::error(413, "request body larger than " +
                                         std::to_string(options.max_body_bytes) + " bytes"),
                false);
          return;
        }
        bhttp::request_parser<bhttp::string_body> parser(std::move(head));
        parser.body_limit(options.max_body_bytes);
        bhttp::read(stream, buffer, parser, ec);
        if (ec == bhttp::error::body_limit) {
          write(stream,
                Response::error(413, "request body larger than " +
                                         std::to_string(options.max_body_bytes) + " bytes"),
                false);
          return;
        }
        if (ec) {
          write(stream, Response::error(400, "malformed request body: " + ec.message()), false);
          return;
        }
        req.body = std::move(parser.get().body());
        res = call(*route, req, nullptr);
      }
      if (!write(stream, res, reusable) || !reusable) return;
    }
  }

  template <class Stream>
  void upgrade(Stream& stream, beast::flat_buffer& buffer,
               bhttp::request_parser<bhttp::empty_body>& head, Request& req, const Route& route) {
    bhttp::request_parser<bhttp::string_body> parser(std::move(head));
    parser.body_limit(options.max_body_bytes);
    beast::error_code ec;
    bhttp::read(stream, buffer, parser, ec);
    if (ec) {
      write(stream, Response::error(400, "malformed request: " + ec.message()), false);
      return;
    }
    if (!beast::websocket::is_upgrade(parser.get())) {
      write(stream, Response::error(426, req.path + " needs a WebSocket upgrade"), false);
      return;
    }
    const Response admitted = call(route, req, nullptr);
    if (admitted.status != 101) {
      write(stream, admitted, false);
      return;
    }
    beast::websocket::stream<Stream&> ws(stream);
    ws.accept(parser.release(), ec);
    if (ec) return;
    Session<beast::websocket::stream<Stream&>> session(ws, lowest(stream).native_handle(),
                                                       stopping);
    try {
      route.session(req, session);
    } catch (const std::exception&) {
      // The session's failure ends its connection only.
    }
    if (!session.closed()) ws.close(beast::websocket::close_code::normal, ec);
  }

  Response call(const Route& route, Request& req, BodyStream* body) {
    try {
      return route.handler(req, body);
    } catch (const nlohmann::json::exception& e) {
      return Response::error(400, std::string("malformed JSON: ") + e.what());
    } catch (const std::invalid_argument& e) {
      return Response::error(400, e.what());
    } catch (const std::exception& e) {
      return Response::error(500, e.what());
    }
  }
};

Server::Server(ServerOptions options, std::vector<Route> routes) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  impl_->routes = std::move(routes);
  const auto& o = impl_->options;
  if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
    try {
      impl_->tls.emplace(asio::ssl::context::tls_server);
      impl_->tls->set_options(asio::ssl::context::default_workarounds |
                              asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                              asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
      impl_->tls->use_certificate_chain_file(o.tls_cert_file);
      impl_->tls->use_private_key_file(o.tls_key_file, asio::ssl::context::pem);
    } catch (const std::exception& e) {
      throw std::runtime_error("TLS certificate '" + o.tls_cert_file + "' / key '" +
                               o.tls_key_file + "': " + e.what());
    }
  }
  beast::error_code ec;
  const auto address = asio::ip::make_address(o.bind, ec);
  if (ec) throw std::runtime_error("cannot listen on '" + o.bind + "': not an IP address");
  const tcp::endpoint ep(address, o.port);
  impl_->acceptor.open(ep.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(ep, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("cannot listen on " + o.bind + ":" + std::to_string(o.port) + ": " +
                             ec.message());
  }
  impl_->accept_thread = std::thread([this] { impl_->accept_loop(); });
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const noexcept {
  return impl_->acceptor.local_endpoint().port();
}

void Server::stop() {
  if (impl_->stopping.exchange(true)) return;
  if (impl_->accept_thread.joinable()) impl_->accept_thread.join();
  std::unique_lock lock(impl_->mu);
  for (tcp::socket* s : impl_->open) {
    beast::error_code ec;
    s->shutdown(tcp::socket::shutdown_both, ec);
  }
  impl_->idle.wait(lock, [&] { return impl_->connections == 0; });
  beast::error_code ec;
  impl_->acceptor.close(ec);
}

}  // namespace tv::http
