// The server's WebSocket session read path: the bytes arrive as a client's frames on an accepted
// session (in memory, no socket) while the session sends messages. Pings are answered, pongs
// ignored, a data frame or a close ends the session; nothing may crash, hang or leak. The first
// byte chooses whether the session's function returns at once (a close handshake racing the
// reads) or waits for the client to end it.
#include <boost/beast/_experimental/test/stream.hpp>
#include <cstdint>

#include "ws_session.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ws = boost::beast::websocket;

bhttp::request<bhttp::string_body> upgrade_request() {
  bhttp::request<bhttp::string_body> req{bhttp::verb::get, "/v1/job/j/config/stream", 11};
  req.set(bhttp::field::host, "localhost");
  req.set(bhttp::field::upgrade, "websocket");
  req.set(bhttp::field::connection, "upgrade");
  req.set(bhttp::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  req.set(bhttp::field::sec_websocket_version, "13");
  return req;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool finish_at_once = (data[0] & 1) != 0;
  asio::io_context io;
  beast::test::stream client(io);
  beast::test::stream server(io);
  server.connect(client);
  using Ws = ws::stream<beast::test::stream>;
  Ws stream(std::move(server));
  std::atomic<bool> stopping{false};
  tv::http::WsLimits limits;
  limits.max_queue_bytes = 64 * 1024;
  // Short, so that an input reaching a deadline (a close racing a bad frame: the session cuts
  // the connection and cancels its operations) ends in milliseconds, as it must end at all.
  limits.write_timeout = std::chrono::milliseconds(20);
  limits.max_message_bytes = 4096;
  const auto req = upgrade_request();
  std::shared_ptr<tv::http::WsSession<Ws>> session;
  stream.async_accept(req, [&](beast::error_code ec) {
    if (ec) return;
    session = std::make_shared<tv::http::WsSession<Ws>>(stream, nullptr, limits, stopping);
    session->start();
    session->send(R"({"type":"snapshot","revision":1})");
    session->send(std::string(600, 'x'));
    if (finish_at_once) session->finish();
  });
  client.write_some(asio::buffer(data + 1, size - 1));
  client.close();  // the client's end: its reads see the end after the fuzzed bytes
  io.run();
  if (session && !finish_at_once) {
    session->finish();
    io.restart();
    io.run();
  }
  return 0;
}
