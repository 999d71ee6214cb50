#include <sys/resource.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <list>
#include <map>
#include <mutex>
#include <thread>

#include "beast.hpp"
#include "large_file_body.hpp"
#include "request_head.hpp"
#include "trainvisor/fleet/http.hpp"
#include "ws_session.hpp"

namespace tv::http {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kWebSocketSendBuffer = 64 * 1024;

std::string ms(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

// A fixed pool of threads for handlers, which may block: jobs queue while all are busy.
class WorkerPool {
 public:
  explicit WorkerPool(std::size_t n) {
    for (std::size_t i = 0; i < std::max<std::size_t>(n, 1); ++i)
      threads_.emplace_back([this] { run(); });
  }
  ~WorkerPool() { join(); }
  void post(std::function<void()> job) {
    std::lock_guard lock(mu_);
    jobs_.push_back(std::move(job));
    ready_.notify_one();
  }
  // Runs what is queued, then ends the threads.
  void join() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void run() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mu_);
        ready_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// The deadline of the next wait in a transfer: no wait longer than `grace`, and past the grace
// the transfer must average `rate` bytes per second.
struct Pace {
  Clock::time_point start = Clock::now();
  std::chrono::milliseconds grace{10000};
  std::uint64_t rate = 0;
  std::uint64_t done = 0;  // bytes moved so far

  static Pace of(const ServerOptions& o) {
    return {Clock::now(), o.transfer_timeout, o.min_transfer_rate, 0};
  }
  Clock::time_point next() const {
    const auto per_wait = Clock::now() + grace;
    if (rate == 0) return per_wait;
    const auto earned = std::chrono::milliseconds(done * 1000 / rate);
    return std::min(per_wait, start + grace + earned);
  }
};

bool is_disconnect(const beast::error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::ssl::error::stream_truncated ||
         ec == asio::error::operation_aborted || ec == asio::error::bad_descriptor ||
         ec == asio::error::broken_pipe || ec == beast::error::timeout;
}

// Why a handler's Response cannot go on the wire, empty when it can.
std::string unsendable(const Response& r) {
  if (r.status < 100 || r.status > 999) return "status " + std::to_string(r.status);
  const auto bad = [](const std::string& s) {
    return s.find_first_of(std::string("\r\n\0", 3)) != std::string::npos;
  };
  if (bad(r.content_type)) return "a line break in its Content-Type";
  for (const auto& [k, v] : r.headers) {
    if (k.empty() || bad(k) || k.find(':') != std::string::npos || bad(v))
      return "header '" + k + "'";
  }
  return {};
}

// What every connection shares: options, routes, the I/O threads, the handler pool, and the
// counts behind the connection caps.
struct ServerCore {
  ServerOptions options;
  std::vector<Route> routes;
  asio::io_context io;
  tcp::acceptor acceptor{asio::make_strand(io)};
  asio::steady_timer accept_retry{acceptor.get_executor()};
  std::optional<asio::ssl::context> tls;
  std::vector<std::thread> io_threads;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::unique_ptr<WorkerPool> workers;
  std::atomic<bool> stopping{false};
  std::uint16_t port = 0;

  struct Closable {
    virtual ~Closable() = default;
    virtual void shut() = 0;  // any thread: ends every operation of the connection
  };
  std::mutex mu;
  std::condition_variable idle;
  std::size_t connections = 0, refusing = 0, sessions = 0;
  std::map<asio::ip::address, std::size_t> per_peer;
  std::map<std::uint64_t, std::weak_ptr<Closable>> live;
  std::uint64_t next_id = 0;
  std::list<std::thread> session_threads;
  std::vector<std::thread::id> finished_sessions;

  // A connection's place in the counts, given back when the connection is destroyed.
  struct Ticket {
    ServerCore* core = nullptr;
    std::uint64_t id = 0;
    std::optional<asio::ip::address> peer;  // set: counted as a connection, else as a refusal
    Ticket(ServerCore* c, std::uint64_t i, std::optional<asio::ip::address> p)
        : core(c), id(i), peer(std::move(p)) {}
    Ticket(const Ticket&) = delete;
    ~Ticket() { core->release(*this); }
  };

  void release(const Ticket& t) {
    std::lock_guard lock(mu);
    live.erase(t.id);
    if (t.peer) {
      --connections;
      if (--per_peer[*t.peer] == 0) per_peer.erase(*t.peer);
    } else {
      --refusing;
    }
    idle.notify_all();
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
    } catch (...) {
      return Response::error(500, "the handler failed");
    }
  }

  // False when max_websocket_sessions are running.
  bool begin_session() {
    std::lock_guard lock(mu);
    if (sessions >= options.max_websocket_sessions) return false;
    ++sessions;
    return true;
  }
  void end_session() {
    std::lock_guard lock(mu);
    --sessions;
    idle.notify_all();
  }
  // Runs a session's function on a thread of its own (counted by begin_session).
  void spawn_session(std::function<void()> fn) {
    std::lock_guard lock(mu);
    for (auto it = session_threads.begin(); it != session_threads.end();) {
      const auto done = std::find(finished_sessions.begin(), finished_sessions.end(), it->get_id());
      if (done == finished_sessions.end()) {
        ++it;
        continue;
      }
      finished_sessions.erase(done);
      it->join();  // it has finished: no wait
      it = session_threads.erase(it);
    }
    session_threads.emplace_back([this, fn = std::move(fn)]() mutable {
      fn();
      fn = nullptr;  // what it held (the connection) goes before the count says it is done
      std::lock_guard lock(mu);
      finished_sessions.push_back(std::this_thread::get_id());
      --sessions;
      idle.notify_all();
    });
  }

  void accept();
  void admit(tcp::socket socket);
  void stop();
};

template <class Stream>
class Connection final : public ServerCore::Closable,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;
  using WsStream = ws::stream<Stream&>;

  Connection(ServerCore& core, std::uint64_t id, std::optional<asio::ip::address> peer,
             Stream stream)
      : ticket_(&core, id, std::move(peer)), core_(core), stream_(std::move(stream)) {}

  void start() {
    if constexpr (kTls) {
      lowest().expires_after(core_.options.head_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (ec) return self->close();
                                self->wait_request();
                              });
    } else {
      wait_request();
    }
  }

  auto executor() { return stream_.get_executor(); }

  // Answers `r` and closes: a connection over a cap.
  void refuse(Response r) { reply(std::move(r), false); }

  void shut() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ec;
      self->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      self->lowest().close();
    });
  }

 private:
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(stream_); }
  const ServerOptions& options() const { return core_.options; }

  // Between requests: the next one's first byte, within idle_timeout.
  void wait_request() {
    if (core_.stopping.load()) return close();
    if (buffer_.size() > 0) return read_head();
    lowest().expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(4096),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->buffer_.commit(n);
                              if (ec) return self->close();
                              self->read_head();
                            });
  }

  // The whole head within head_timeout of its first byte.
  void read_head() {
    head_.emplace();
    head_->header_limit(options().max_header_bytes);
    head_->body_limit(boost::none);
    lowest().expires_after(options().head_timeout);
    bhttp::async_read_header(stream_, buffer_, *head_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               self->on_head(ec);
                             });
  }

  void on_head(const beast::error_code& ec) {
    // A deadline closed the socket already: there is nobody to answer.
    if (is_disconnect(ec)) return close();
    if (ec) return reply(head_error(ec, options()), false);
    const auto& h = head_->get();
    if (auto bad = check_framing(h)) return reply(std::move(*bad), false);
    req_ = Request{};
    Routed routed = route_request(h, core_.routes, req_);
    // The body (if any) was not read: the connection cannot be reused after a refusal.
    if (routed.refusal) return reply(std::move(*routed.refusal), false);
    route_ = routed.route;
    started_ = Clock::now();
    keep_alive_ = h.keep_alive();
    if (route_->session) return read_body();
    if (lower(req_.header("expect")) != "100-continue") return after_continue();
    auto cont = std::make_shared<bhttp::response<bhttp::empty_body>>(bhttp::status::continue_, 11);
    lowest().expires_after(options().transfer_timeout);
    bhttp::async_write(stream_, *cont,
                       [self = this->shared_from_this(), cont](beast::error_code e, std::size_t) {
                         if (e) return self->close();
                         self->after_continue();
                       });
  }

  void after_continue() {
    if (!route_->streamed_body) return read_body();
    streamed_.emplace(std::move(*head_));
    streamed_->body_limit(boost::none);  // the handler enforces its own limit as it reads
    const auto& p = *streamed_;
    // A body with a Content-Length (and no chunked coding) is plain bytes: it is read straight
    // into the handler's buffer rather than through the parser, which would read it into the
    // connection's buffer first and copy it once more. A chunked body goes through the parser.
    if (!p.chunked() && p.content_length()) {
      remaining_ = *p.content_length();
    } else {
      remaining_.reset();
      buffer_.reserve(64 * 1024);
    }
    pace_ = Pace::of(options());
    bridge_.emplace(*this);
    run_handler();
  }

  // A body read whole (limited by max_body_bytes), then the handler (or the upgrade).
  void read_body() {
    if (const auto n = head_->content_length(); n && *n > options().max_body_bytes) {
      return reply(body_too_large(options()), false);
    }
    body_.emplace(std::move(*head_));
    body_->body_limit(options().max_body_bytes);
    pace_ = Pace::of(options());
    read_body_piece();
  }

  void read_body_piece() {
    if (body_->is_done()) {
      if (route_->session && !beast::websocket::is_upgrade(body_->get())) {
        return reply(Response::error(426, req_.path + " needs a WebSocket upgrade"), false);
      }
      req_.body = body_->get().body();
      return run_handler();
    }
    lowest().expires_at(pace_.next());
    bhttp::async_read_some(stream_, buffer_, *body_,
                           [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                             self->pace_.done += n;
                             if (ec == bhttp::error::body_limit)
                               return self->reply(body_too_large(self->options()), false);
                             if (is_disconnect(ec)) return self->close();
                             if (ec)
                               return self->reply(
                                   Response::error(400, "malformed request body: " + ec.message()),
                                   false);
                             self->read_body_piece();
                           });
  }

  void run_handler() {
    core_.workers->post([self = this->shared_from_this()] {
      Response r =
          self->core_.call(*self->route_, self->req_, self->bridge_ ? &*self->bridge_ : nullptr);
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r)]() mutable { self->after_handler(std::move(r)); });
    });
  }

  void after_handler(Response r) {
    if (route_->session) {
      if (r.status != 101) return reply(std::move(r), false);
      observe(r.status);
      return start_websocket();
    }
    const bool body_read = !bridge_ || bridge_->done();
    bridge_.reset();
    streamed_.reset();
    reply(std::move(r), keep_alive_ && body_read);
  }

  // The body of a streamed route, read on the connection's executor for a handler's thread that
  // waits for each piece.
  class Bridge final : public BodyStream {
   public:
    explicit Bridge(Connection& c) : c_(c) {}
    std::size_t read(std::span<std::byte> buf) override {
      if (buf.empty()) return 0;
      std::promise<std::pair<beast::error_code, std::size_t>> piece;
      auto got = piece.get_future();
      asio::post(c_.stream_.get_executor(), [&] {
        c_.read_for_handler(buf, [&piece](beast::error_code ec, std::size_t n) {
          piece.set_value({ec, n});
        });
      });
      const auto [ec, n] = got.get();
      if (ec == beast::error::timeout) {
        throw std::runtime_error("reading the request body: it arrived more slowly than " +
                                 std::to_string(c_.options().min_transfer_rate) +
                                 " bytes/s after " + ms(c_.options().transfer_timeout));
      }
      if (ec) throw std::runtime_error("reading the request body: " + ec.message());
      return n;
    }
    std::optional<std::uint64_t> content_length() const override {
      if (auto n = c_.streamed_->content_length()) return *n;
      return std::nullopt;
    }
    bool done() const { return c_.remaining_ ? *c_.remaining_ == 0 : c_.streamed_->is_done(); }

   private:
    Connection& c_;
  };

  using Done = std::function<void(beast::error_code, std::size_t)>;

  void read_for_handler(std::span<std::byte> buf, Done done) {
    if (remaining_) return read_plain(buf, std::move(done));
    if (streamed_->is_done()) return done({}, 0);
    streamed_->get().body().data = buf.data();
    streamed_->get().body().size = buf.size();
    arm_handler_read();
    bhttp::async_read_some(stream_, buffer_, *streamed_,
                           [self = this->shared_from_this(), buf, done = std::move(done)](
                               beast::error_code ec, std::size_t) mutable {
                             self->disarm_handler_read(ec);
                             if (ec == bhttp::error::need_buffer) ec = {};
                             if (ec) return done(ec, 0);
                             const std::size_t got =
                                 buf.size() - self->streamed_->get().body().size;
                             self->pace_.done += got;
                             if (got > 0 || self->streamed_->is_done()) return done({}, got);
                             self->read_for_handler(buf, std::move(done));
                           });
  }

  void read_plain(std::span<std::byte> buf, Done done) {
    std::uint64_t& remaining = *remaining_;
    if (remaining == 0) return done({}, 0);
    const auto into = asio::buffer(
        buf.data(), static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining)));
    if (buffer_.size() > 0) {  // what reading the head already took from the socket
      const std::size_t got = asio::buffer_copy(into, buffer_.data());
      buffer_.consume(got);
      remaining -= got;
      return done({}, got);
    }
    arm_handler_read();
    stream_.async_read_some(into, [self = this->shared_from_this(), done = std::move(done)](
                                      beast::error_code ec, std::size_t n) {
      self->disarm_handler_read(ec);
      // The parser's words for a body cut short (what it says when its read meets the end).
      if (ec == asio::error::eof) ec = bhttp::error::partial_message;
      *self->remaining_ -= n;
      self->pace_.done += n;
      done(ec, n);
    });
  }

  // A handler's read has a deadline that cancels the read rather than closing the socket (as
  // the stream's own deadline would), so that the handler's reply can still be sent.
  void arm_handler_read() {
    lowest().expires_never();
    read_timed_out_ = false;
    read_timer_.expires_at(pace_.next());
    read_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (ec) return;
      self->read_timed_out_ = true;
      self->lowest().socket().cancel(ec);
    });
  }
  void disarm_handler_read(beast::error_code& ec) {
    read_timer_.cancel();
    if (read_timed_out_ && ec) ec = beast::error::timeout;
  }

  void start_websocket() {
    if (!core_.begin_session()) {
      return reply(Response::error(503, "too many WebSocket sessions (" +
                                            std::to_string(options().max_websocket_sessions) + ")"),
                   false);
    }
    upgrade_ = body_->release();
    ws_.emplace(stream_);
    lowest().expires_never();  // the WebSocket has deadlines of its own
    // The kernel's share of a slow client's backlog stays small, so that the write deadline
    // and the queue bound (not the kernel's buffer autotuning) decide when it is cut off.
    beast::error_code ignored;
    lowest().socket().set_option(asio::socket_base::send_buffer_size(kWebSocketSendBuffer),
                                 ignored);
    ws_->set_option(
        ws::stream_base::timeout{options().transfer_timeout, ws::stream_base::none(), false});
    ws_->async_accept(upgrade_, [self = this->shared_from_this()](beast::error_code ec) {
      if (ec) {
        self->core_.end_session();
        return self->close();
      }
      WsLimits limits{self->options().max_websocket_queue_bytes, self->options().transfer_timeout};
      limits.client_messages = self->route_->client_messages;
      auto session =
          std::make_shared<WsSession<WsStream>>(*self->ws_, self, limits, self->core_.stopping);
      session->start();
      self->core_.spawn_session([self, session] {
        try {
          self->route_->session(self->req_, *session);
        } catch (const std::exception&) {
          // The session's failure ends its connection only.
        }
        session->finish();
      });
    });
  }

  template <class Body>
  struct Outgoing {
    bhttp::response<Body> msg;
    std::optional<bhttp::response_serializer<Body>> sr;
  };

  // Sends `r`, then waits for the next request (`keep`) or closes.
  void reply(Response r, bool keep) {
    keep = keep && !core_.stopping.load();
    if (const std::string why = unsendable(r); !why.empty()) {
      r = Response::error(500, "the reply could not be sent: " + why);
    }
    if (!r.file_path.empty()) {
      auto out = std::make_shared<Outgoing<LargeFileBody>>();
      beast::error_code ec;
      out->msg.body().open_read(r.file_path, ec);
      if (ec) return reply(Response::error(500, "cannot open " + r.file_path), false);
      return send(std::move(out), r, keep);
    }
    auto out = std::make_shared<Outgoing<bhttp::string_body>>();
    out->msg.body() = std::move(r.body);
    send(std::move(out), r, keep);
  }

  template <class Body>
  void send(std::shared_ptr<Outgoing<Body>> out, const Response& r, bool keep) {
    observe(r.status);
    auto& m = out->msg;
    m.result(static_cast<unsigned>(r.status));
    m.version(11);
    m.set(bhttp::field::content_type, r.content_type);
    for (const auto& [k, v] : options().response_headers)
      m.set(k, v);
    for (const auto& [k, v] : r.headers)
      m.set(k, v);
    m.keep_alive(keep);
    m.prepare_payload();
    out->sr.emplace(m);
    pace_ = Pace::of(options());
    write_piece(std::move(out), keep);
  }

  template <class Body>
  void write_piece(std::shared_ptr<Outgoing<Body>> out, bool keep) {
    if (out->sr->is_done()) return keep ? wait_request() : close();
    lowest().expires_at(pace_.next());
    bhttp::async_write_some(
        stream_, *out->sr,
        [self = this->shared_from_this(), out, keep](beast::error_code ec, std::size_t n) mutable {
          self->pace_.done += n;
          if (ec) return self->close();
          self->write_piece(std::move(out), keep);
        });
  }

  // Tells ServerOptions::on_request about the routed request being answered, once.
  void observe(int status) {
    if (!started_) return;
    const auto duration = Clock::now() - *started_;
    started_.reset();
    if (!options().on_request) return;
    try {
      options().on_request({route_->pattern, req_.method, status, duration});
    } catch (...) {
      // An observer's failure must not cost the client its answer.
    }
  }

  // The end of the connection. Over plain TCP, a reply sent before the whole request body was
  // read (413, 401, a refused upload) must reach a client that is still sending: our side closes
  // for writing, then reads and drops what keeps arriving until a second passes without any, so
  // that the kernel does not answer it with a reset that would destroy the reply in the client's
  // buffer. Over TLS there is no close_notify exchange: it waits for the peer's, which a
  // kept-alive client that is still connected never sends.
  void close() {
    beast::error_code ec;
    if (kTls || core_.stopping.load()) {
      lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
      lowest().close();
      return;
    }
    lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
    sink_ = std::make_unique<std::array<char, 16 * 1024>>();
    drain(0);
  }

  void drain(std::size_t dropped) {
    lowest().expires_after(std::chrono::seconds(1));
    lowest().async_read_some(asio::buffer(*sink_), [self = this->shared_from_this(), dropped](
                                                       beast::error_code ec, std::size_t n) {
      if (ec || n == 0 || dropped + n > (std::size_t{256} << 20)) return self->lowest().close();
      self->drain(dropped + n);
    });
  }

  ServerCore::Ticket ticket_;  // first: given back after everything else is gone
  ServerCore& core_;
  Stream stream_;
  asio::steady_timer read_timer_{stream_.get_executor()};
  bool read_timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<HeadParser> head_;
  std::optional<bhttp::request_parser<bhttp::string_body>> body_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> streamed_;
  std::optional<std::uint64_t> remaining_;  // a plain streamed body: bytes still to come
  std::optional<Bridge> bridge_;
  Request req_;
  const Route* route_ = nullptr;
  std::optional<Clock::time_point> started_;  // set while a routed request awaits its answer
  bool keep_alive_ = false;
  Pace pace_;
  std::optional<WsStream> ws_;
  bhttp::request<bhttp::string_body> upgrade_;
  std::unique_ptr<std::array<char, 16 * 1024>> sink_;
};

}  // namespace

void ServerCore::accept() {
  acceptor.async_accept(asio::make_strand(io), [this](beast::error_code ec, tcp::socket socket) {
    if (stopping.load() || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of file descriptors, most likely: try again shortly rather than spin.
      accept_retry.expires_after(std::chrono::milliseconds(50));
      accept_retry.async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    admit(std::move(socket));
    accept();
  });
}

void ServerCore::admit(tcp::socket socket) {
  beast::error_code ec;
  const auto remote = socket.remote_endpoint(ec);
  if (ec) return;
  const asio::ip::address peer = remote.address();
  std::unique_lock lock(mu);
  if (stopping.load()) return;
  const std::uint64_t id = ++next_id;
  std::string refusal;
  const auto from_peer = per_peer.find(peer);
  if (connections >= options.max_connections) {
    refusal = "too many connections (" + std::to_string(options.max_connections) + ")";
  } else if (from_peer != per_peer.end() && from_peer->second >= options.max_connections_per_peer) {
    refusal = "too many connections from " + peer.to_string() + " (" +
              std::to_string(options.max_connections_per_peer) + ")";
  }
  if (!refusal.empty()) {
    // A refusal is answered over plain HTTP, within its own bound; otherwise the socket closes.
    if (tls || refusing >= options.max_connections) return;
    ++refusing;
    auto c = std::make_shared<Connection<beast::tcp_stream>>(*this, id, std::nullopt,
                                                             beast::tcp_stream(std::move(socket)));
    live[id] = c;
    lock.unlock();
    asio::dispatch(c->executor(), [c, refusal] { c->refuse(Response::error(503, refusal)); });
    return;
  }
  ++connections;
  ++per_peer[peer];
  if (tls) {
    auto c = std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(
        *this, id, peer, beast::ssl_stream<beast::tcp_stream>(std::move(socket), *tls));
    live[id] = c;
    lock.unlock();
    asio::dispatch(c->executor(), [c] { c->start(); });
  } else {
    auto c = std::make_shared<Connection<beast::tcp_stream>>(*this, id, peer,
                                                             beast::tcp_stream(std::move(socket)));
    live[id] = c;
    lock.unlock();
    asio::dispatch(c->executor(), [c] { c->start(); });
  }
}

void ServerCore::stop() {
  if (stopping.exchange(true)) return;
  std::promise<void> closed;
  asio::post(acceptor.get_executor(), [&] {
    beast::error_code ec;
    acceptor.close(ec);
    accept_retry.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
  std::vector<std::shared_ptr<Closable>> open;
  {
    std::lock_guard lock(mu);
    for (const auto& [id, weak] : live)
      if (auto c = weak.lock()) open.push_back(std::move(c));
  }
  for (const auto& c : open)
    c->shut();
  open.clear();  // may destroy a connection, which takes `mu`
  {
    std::unique_lock lock(mu);
    idle.wait(lock, [&] { return connections == 0 && refusing == 0 && sessions == 0; });
  }
  for (auto& t : session_threads)
    t.join();
  session_threads.clear();
  work.reset();
  io.stop();
  for (auto& t : io_threads)
    t.join();
  workers->join();
}

struct Server::Impl : ServerCore {};

namespace {

// Many connections need many descriptors: the soft limit (often 1024) goes up to the hard one.
void raise_open_file_limit() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

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
  raise_open_file_limit();
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
  impl_->port = impl_->acceptor.local_endpoint(ec).port();
  impl_->workers = std::make_unique<WorkerPool>(o.handler_threads);
  impl_->work.emplace(impl_->io.get_executor());
  impl_->accept();
  for (std::size_t i = 0; i < std::max<std::size_t>(o.io_threads, 1); ++i)
    impl_->io_threads.emplace_back([impl = impl_.get()] { impl->io.run(); });
}

Server::~Server() {
  stop();
}

std::uint16_t Server::port() const noexcept {
  return impl_->port;
}

void Server::stop() {
  impl_->stop();
}

}  // namespace tv::http
