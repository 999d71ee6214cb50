#include <atomic>
#include <memory>
#include <optional>

#include "beast.hpp"
#include "trainvisor/fleet/http.hpp"
#include "url.hpp"

namespace tv::http {

// Asynchronous I/O on a private io_context run by the calling thread: every wait has a deadline
// (a timer closes the socket), and interrupt() only posts to that io_context, so no two threads
// ever touch the stream.
struct WebSocketClient::Impl {
  ClientOptions options;
  Url url;
  asio::io_context io;
  std::optional<asio::ssl::context> tls;
  std::unique_ptr<ws::stream<beast::tcp_stream>> plain;
  std::unique_ptr<ws::stream<beast::ssl_stream<beast::tcp_stream>>> secure;
  beast::flat_buffer buffer;
  std::atomic<bool> interrupted{false};

  beast::tcp_stream& lowest() {
    return plain ? beast::get_lowest_layer(*plain) : beast::get_lowest_layer(*secure);
  }

  // Runs one asynchronous operation to its end or until `limit`, whichever comes first.
  template <class Start>
  beast::error_code run(Start start, std::chrono::milliseconds limit, const char* what) {
    bool done = false;
    bool timed_out = false;
    beast::error_code result;
    asio::steady_timer timer(io);
    timer.expires_after(limit);
    timer.async_wait([&](beast::error_code ec) {
      if (ec || done) return;
      timed_out = true;
      beast::error_code ignored;
      lowest().socket().close(ignored);
    });
    start([&](beast::error_code ec, auto&&...) {
      done = true;
      result = ec;
      timer.cancel();
    });
    io.restart();
    io.run();  // returns once the operation and the (cancelled) timer are both finished
    if (interrupted.load())
      throw std::runtime_error("websocket to " + options.url + " interrupted");
    if (timed_out) {
      throw std::runtime_error("websocket to " + options.url + ": " + what + " timed out after " +
                               std::to_string(limit.count()) + " ms");
    }
    return result;
  }

  template <class Stream>
  void upgrade(Stream& stream, const std::string& target,
               const std::vector<std::pair<std::string, std::string>>& headers) {
    stream.set_option(ws::stream_base::decorator([&headers](ws::request_type& req) {
      for (const auto& [k, v] : headers)
        req.set(k, v);
    }));
    ws::response_type reply;
    const auto ec = run(
        [&](auto handler) {
          stream.async_handshake(reply, url.host + ":" + url.port, target, std::move(handler));
        },
        options.timeout, "upgrade");
    if (ec == ws::error::upgrade_declined) throw WebSocketRefused(reply.result_int(), reply.body());
    if (ec)
      throw std::runtime_error("websocket upgrade at " + options.url + target + ": " +
                               ec.message());
    beast::get_lowest_layer(stream).expires_never();
  }

  template <class Stream>
  std::string read(Stream& stream, std::chrono::milliseconds idle) {
    buffer.clear();
    const auto ec = run([&](auto handler) { stream.async_read(buffer, std::move(handler)); }, idle,
                        "waiting for a message");
    if (ec == ws::error::closed) {
      const std::string why(stream.reason().reason.c_str());
      throw std::runtime_error("websocket to " + options.url + ": closed by the server (" +
                               std::to_string(stream.reason().code) + ")" +
                               (why.empty() ? "" : ": " + why));
    }
    if (ec) throw std::runtime_error("websocket to " + options.url + ": " + ec.message());
    return beast::buffers_to_string(buffer.data());
  }

  template <class Stream>
  void write(Stream& stream, const std::string& text) {
    stream.text(true);
    const auto ec =
        run([&](auto handler) { stream.async_write(asio::buffer(text), std::move(handler)); },
            options.timeout, "sending a message");
    if (ec) throw std::runtime_error("websocket to " + options.url + ": " + ec.message());
  }
};

WebSocketClient::WebSocketClient(const ClientOptions& options, const std::string& target,
                                 const std::vector<std::pair<std::string, std::string>>& headers)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = options;
  m.url = parse_url(options.url);
  if (m.url.tls) m.tls.emplace(make_client_tls(options.ca_file));
  tcp::resolver resolver(m.io);
  beast::error_code ec;
  const auto endpoints = resolver.resolve(m.url.host, m.url.port, ec);
  if (ec) throw std::runtime_error("cannot resolve " + m.url.host + ": " + ec.message());
  if (m.url.tls) {
    m.secure = std::make_unique<ws::stream<beast::ssl_stream<beast::tcp_stream>>>(m.io, *m.tls);
  } else {
    m.plain = std::make_unique<ws::stream<beast::tcp_stream>>(m.io);
  }
  ec = m.run([&](auto handler) { m.lowest().async_connect(endpoints, std::move(handler)); },
             options.timeout, "connect");
  if (ec) throw std::runtime_error("cannot connect to " + options.url + ": " + ec.message());
  m.lowest().socket().set_option(tcp::no_delay(true));
  if (m.plain) {
    m.upgrade(*m.plain, target, headers);
    return;
  }
  auto& tls_stream = m.secure->next_layer();
  if (!SSL_set_tlsext_host_name(tls_stream.native_handle(), m.url.host.c_str())) {
    throw std::runtime_error("TLS: cannot set the server name " + m.url.host);
  }
  tls_stream.set_verify_callback(asio::ssl::host_name_verification(m.url.host));
  ec = m.run(
      [&](auto handler) {
        tls_stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
      },
      options.timeout, "TLS handshake");
  if (ec)
    throw std::runtime_error("TLS handshake with " + options.url + " failed: " + ec.message());
  m.upgrade(*m.secure, target, headers);
}

WebSocketClient::~WebSocketClient() = default;

std::string WebSocketClient::receive(std::chrono::milliseconds idle) {
  return impl_->plain ? impl_->read(*impl_->plain, idle) : impl_->read(*impl_->secure, idle);
}

void WebSocketClient::send(const std::string& text) {
  if (impl_->plain) {
    impl_->write(*impl_->plain, text);
  } else {
    impl_->write(*impl_->secure, text);
  }
}

void WebSocketClient::interrupt() {
  impl_->interrupted.store(true);
  asio::post(impl_->io, [m = impl_.get()] {
    beast::error_code ignored;
    m->lowest().socket().close(ignored);
  });
}

void WebSocketClient::close() {
  Impl& m = *impl_;
  if (m.interrupted.load() || !m.lowest().socket().is_open()) return;
  try {
    m.run(
        [&](auto handler) {
          if (m.plain)
            m.plain->async_close(ws::close_code::normal, std::move(handler));
          else
            m.secure->async_close(ws::close_code::normal, std::move(handler));
        },
        std::chrono::milliseconds(500), "close");
  } catch (const std::exception&) {
    // Best effort: the server notices a dropped connection too.
  }
}

}  // namespace tv::http
