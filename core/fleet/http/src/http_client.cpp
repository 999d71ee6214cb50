#include <optional>

#include "beast.hpp"
#include "large_file_body.hpp"
#include "trainvisor/fleet/http.hpp"
#include "url.hpp"

namespace tv::http {

// Every operation is asynchronous on the client's own io_context, run by the calling thread, with
// a deadline on the stream (beast::tcp_stream): a coordinator that stops answering costs at most
// `timeout` per call instead of a thread forever (socket receive timeouts do not bound Asio's
// synchronous reads, which wait again when one expires).
struct Client::Impl {
  ClientOptions options;
  Url url;
  asio::io_context io;
  std::optional<asio::ssl::context> tls;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }

  // Runs one asynchronous operation to its end; the stream's deadline bounds it.
  template <class Start>
  beast::error_code run(Start start) {
    beast::error_code result;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    io.restart();
    io.run();
    return result;
  }

  void connect() {
    plain.reset();
    secure.reset();
    buffer.clear();
    tcp::resolver resolver(io);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(url.host, url.port, ec);
    if (ec) throw std::runtime_error("cannot resolve " + url.host + ": " + ec.message());
    beast::tcp_stream stream(io);
    stream.expires_after(options.timeout);
    ec = run([&](auto h) { stream.async_connect(endpoints, std::move(h)); });
    if (ec) throw std::runtime_error("cannot connect to " + options.url + ": " + ec.message());
    stream.socket().set_option(tcp::no_delay(true));
    if (!url.tls) {
      plain.emplace(std::move(stream));
      return;
    }
    secure.emplace(std::move(stream), *tls);
    if (!SSL_set_tlsext_host_name(secure->native_handle(), url.host.c_str())) {
      throw std::runtime_error("TLS: cannot set the server name " + url.host);
    }
    secure->set_verify_callback(asio::ssl::host_name_verification(url.host));
    lowest().expires_after(options.timeout);
    ec =
        run([&](auto h) { secure->async_handshake(asio::ssl::stream_base::client, std::move(h)); });
    if (ec)
      throw std::runtime_error("TLS handshake with " + options.url + " failed: " + ec.message());
  }

  template <class Body>
  Response exchange(bhttp::request<Body>& req, const std::string& download_path = {}) {
    req.set(bhttp::field::host, url.host);
    req.keep_alive(true);
    req.prepare_payload();
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (!plain && !secure) connect();
      try {
        return secure ? exchange_on(*secure, req, download_path)
                      : exchange_on(*plain, req, download_path);
      } catch (const std::runtime_error&) {
        // A kept-alive connection the server closed meanwhile: reconnect once. A request body
        // streamed from a file is reopened by the caller's next call, so only retry fresh ones.
        plain.reset();
        secure.reset();
        if (attempt == 1 || !std::is_same_v<Body, bhttp::string_body>) throw;
      }
    }
    throw std::runtime_error("unreachable");
  }

  template <class Stream, class Body>
  Response exchange_on(Stream& stream, bhttp::request<Body>& req,
                       const std::string& download_path) {
    // Sent piece by piece, each with its own deadline: an upload is bounded by progress.
    beast::error_code ec;
    bhttp::request_serializer<Body> serializer(req);
    while (!ec && !serializer.is_done()) {
      lowest().expires_after(options.timeout);
      ec = run([&](auto h) { bhttp::async_write_some(stream, serializer, std::move(h)); });
    }
    if constexpr (std::is_same_v<Body, LargeFileBody>) {
      if (ec && !req.body().failure().empty()) {
        // The file, not the connection, failed: the request cannot be completed, and the server
        // is still waiting for the rest of its body.
        plain.reset();
        secure.reset();
        throw std::runtime_error("cannot read " + req.body().path() + ": " + req.body().failure());
      }
    }
    if (ec) {
      // The server may have answered early (a refused upload) and stopped reading: its reply is
      // what the caller wants to see.
      bhttp::response_parser<bhttp::string_body> early;
      lowest().expires_after(options.timeout);
      const beast::error_code read_ec =
          run([&](auto h) { bhttp::async_read(stream, buffer, early, std::move(h)); });
      plain.reset();
      secure.reset();
      if (read_ec) throw std::runtime_error("sending to " + options.url + ": " + ec.message());
      Response out;
      out.status = early.get().result_int();
      out.body = early.get().body();
      return out;
    }
    Response out;
    if (!download_path.empty()) {
      bhttp::response_parser<LargeFileBody> parser;
      parser.body_limit(boost::none);
      // Read sizes follow the buffer's free capacity (at least 512 bytes, at most 64 KiB).
      buffer.reserve(64 * 1024);
      // Only a 200 goes to the file; an error body is read as text below.
      lowest().expires_after(options.timeout);
      ec = run([&](auto h) { bhttp::async_read_header(stream, buffer, parser, std::move(h)); });
      if (ec) throw std::runtime_error("reading from " + options.url + ": " + ec.message());
      if (parser.get().result_int() == 200) {
        parser.get().body().open_write(download_path, ec);
        if (ec) throw std::runtime_error("cannot write " + download_path + ": " + ec.message());
        // A large download is bounded by progress, not by its total time.
        while (!parser.is_done()) {
          lowest().expires_after(options.timeout);
          ec = run([&](auto h) { bhttp::async_read_some(stream, buffer, parser, std::move(h)); });
          if (ec && !parser.get().body().failure().empty()) {
            plain.reset();
            secure.reset();
            throw std::runtime_error("cannot write " + download_path + ": " +
                                     parser.get().body().failure());
          }
          if (ec) throw std::runtime_error("reading from " + options.url + ": " + ec.message());
        }
        out.status = 200;
        return out;
      }
      bhttp::response_parser<bhttp::string_body> text(std::move(parser));
      lowest().expires_after(options.timeout);
      run([&](auto h) { bhttp::async_read(stream, buffer, text, std::move(h)); });
      out.status = text.get().result_int();
      out.body = text.get().body();
      return out;
    }
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    lowest().expires_after(options.timeout);
    ec = run([&](auto h) { bhttp::async_read(stream, buffer, parser, std::move(h)); });
    if (ec) throw std::runtime_error("reading from " + options.url + ": " + ec.message());
    lowest().expires_never();
    auto& res = parser.get();
    out.status = res.result_int();
    out.body = std::move(res.body());
    if (auto ct = res.find(bhttp::field::content_type); ct != res.end())
      out.content_type = std::string(ct->value());
    for (const auto& field : res)
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    if (!res.keep_alive()) {
      plain.reset();
      secure.reset();
    }
    return out;
  }
};

Client::Client(ClientOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->url = parse_url(impl_->options.url);
  if (impl_->url.tls) impl_->tls.emplace(make_client_tls(impl_->options.ca_file));
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;

Response Client::request(const std::string& method, const std::string& target,
                         const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers) {
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  for (const auto& [k, v] : headers)
    req.set(k, v);
  if (!body.empty()) req.set(bhttp::field::content_type, "application/json");
  req.body() = body;
  return impl_->exchange(req);
}

Response Client::send_file(const std::string& method, const std::string& target,
                           const std::string& path,
                           const std::vector<std::pair<std::string, std::string>>& headers) {
  bhttp::request<LargeFileBody> req{bhttp::string_to_verb(method), target, 11};
  beast::error_code ec;
  req.body().open_read(path, ec);
  if (ec) throw std::runtime_error("cannot read " + path + ": " + ec.message());
  for (const auto& [k, v] : headers)
    req.set(k, v);
  req.set(bhttp::field::content_type, "application/octet-stream");
  return impl_->exchange(req);
}

Response Client::download(const std::string& target, const std::string& path,
                          const std::vector<std::pair<std::string, std::string>>& headers) {
  bhttp::request<bhttp::empty_body> req{bhttp::verb::get, target, 11};
  for (const auto& [k, v] : headers)
    req.set(k, v);
  return impl_->exchange(req, path);
}

}  // namespace tv::http
