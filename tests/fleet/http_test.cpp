// The HTTP server and client over real sockets on 127.0.0.1: routing, JSON errors for every kind
// of bad request, streamed bodies both ways, concurrency, and a TLS round trip with a certificate
// made for the test.
#include "trainvisor/fleet/http.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "refusing_port.hpp"

namespace tv::http {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

ClientOptions at(std::string url, std::string ca = {},
                 std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  ClientOptions o;
  o.url = std::move(url);
  o.ca_file = std::move(ca);
  o.timeout = timeout;
  return o;
}

// Reads until the server closes the connection.
std::string read_all(boost::asio::ip::tcp::socket& s) {
  std::string out;
  boost::system::error_code ec;
  char buf[4096];
  while (std::size_t n = s.read_some(boost::asio::buffer(buf), ec)) {
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

std::vector<Route> routes(std::atomic<int>& hits) {
  return {
      {"GET", "/v1/health",
       [](Request&, BodyStream*) {
         return Response::json(200, {{"ok", true}});
       }},
      {"POST", "/v1/echo/{a}/x/{b}",
       [&hits](Request& r, BodyStream*) {
         ++hits;
         return Response::json(200, {{"a", r.params[0]},
                                     {"b", r.params[1]},
                                     {"q", r.query["q"]},
                                     {"token", r.header("x-operator-token")},
                                     {"body", nlohmann::json::parse(r.body)}});
       }},
      {"PUT", "/v1/blob",
       [](Request&, BodyStream* body) {
         // Never holds the body: hashes it chunk by chunk.
         // Owned: a body cut short throws out of read() below.
         const std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> owned(EVP_MD_CTX_new(),
                                                                             EVP_MD_CTX_free);
         EVP_MD_CTX* ctx = owned.get();
         EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
         std::vector<std::byte> buf(64 * 1024);
         std::uint64_t total = 0;
         while (std::size_t n = body->read(buf)) {
           EVP_DigestUpdate(ctx, buf.data(), n);
           total += n;
         }
         unsigned char d[32];
         unsigned len = 0;
         EVP_DigestFinal_ex(ctx, d, &len);
         char hex[65];
         for (int i = 0; i < 32; ++i)
           std::snprintf(hex + 2 * i, 3, "%02x", d[i]);
         return Response::json(200, {{"bytes", total}, {"sha256", std::string(hex, 64)}});
       },
       true},
      {"GET", "/v1/file/{name}",
       [](Request& r, BodyStream*) {
         Response res;
         res.content_type = "application/octet-stream";
         res.file_path = "/tmp/" + r.params[0];
         return res;
       }},
      {"POST", "/v1/throws",
       [](Request&, BodyStream*) -> Response {
         throw std::invalid_argument("job id 'x' is unknown");
       }},
      {"GET", "/v1/bad-reply",
       [](Request&, BodyStream*) {
         Response r = Response::json(200, {{"ok", true}});
         r.headers.emplace_back("X-Split", "a\r\nSet-Cookie: evil");
         return r;
       }},
      {"GET", "/v1/throws-anything", [](Request&, BodyStream*) -> Response { throw 42; }},
  };
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.max_body_bytes = 4096;
    o.max_header_bytes = 2048;
    server_ = std::make_unique<Server>(o, routes(hits_));
    url_ = "http://127.0.0.1:" + std::to_string(server_->port());
  }
  // Sends raw bytes and returns the raw reply (for requests the client would never make).
  std::string raw(const std::string& bytes) {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    s.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
    boost::asio::write(s, boost::asio::buffer(bytes));
    return read_all(s);
  }
  // The status codes of the responses in `raw` (each a head, then its Content-Length body).
  static std::vector<int> statuses(std::string raw) {
    std::vector<int> out;
    while (!raw.empty()) {
      const auto end = raw.find("\r\n\r\n");
      if (end == std::string::npos) break;
      out.push_back(std::stoi(raw.substr(9, 3)));
      const auto cl = raw.find("Content-Length: ");
      const std::size_t n = cl < end ? std::stoul(raw.substr(cl + 16)) : 0;
      raw.erase(0, end + 4 + n);
    }
    return out;
  }
  std::atomic<int> hits_{0};
  std::unique_ptr<Server> server_;
  std::string url_;
};

TEST_F(HttpTest, RoutesParamsQueryHeadersAndKeepAlive) {
  Client c(at(url_));
  for (int i = 0; i < 3; ++i) {  // one connection, several requests
    const Response r = c.request("POST", "/v1/echo/job%201/x/7?q=val%3D1", R"({"n":1})",
                                 {{"X-Operator-Token", "secret"}});
    ASSERT_EQ(r.status, 200) << r.body;
    const auto j = r.json_body();
    EXPECT_EQ(j["a"], "job 1");
    EXPECT_EQ(j["b"], "7");
    EXPECT_EQ(j["q"], "val=1");
    EXPECT_EQ(j["token"], "secret");
    EXPECT_EQ(j["body"]["n"], 1);
  }
  EXPECT_EQ(hits_.load(), 3);
}

TEST_F(HttpTest, BadRequestsGetJsonErrors) {
  Client c(at(url_));
  Response r = c.request("GET", "/v1/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.json_body()["error"], "no such endpoint: GET /v1/nope");
  r = c.request("DELETE", "/v1/health");
  EXPECT_EQ(r.status, 405);
  r = c.request("POST", "/v1/echo/a/x/b", std::string(5000, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.json_body()["error"].get<std::string>().find("larger than 4096"), std::string::npos);
  r = c.request("POST", "/v1/echo/a/x/b", "{not json");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.json_body()["error"].get<std::string>().find("malformed JSON"), std::string::npos);
  r = c.request("POST", "/v1/throws", "{}");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json_body()["error"], "job id 'x' is unknown");
  r = c.request("GET", "/v1/health", "", {{"X-Big", std::string(3000, 'h')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(hits_.load(), 1);  // only the malformed JSON reached a handler
  const std::string garbage = raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(garbage.find("400 Bad Request"), std::string::npos) << garbage;
  EXPECT_NE(garbage.find("malformed request"), std::string::npos) << garbage;
  // The server is still fine.
  EXPECT_EQ(Client(at(url_)).request("GET", "/v1/health").status, 200);
}

TEST_F(HttpTest, AmbiguousFramingGetsOneReplyAndTheBodyIsNeverARequest) {
  const std::string inner =
      "POST /v1/echo/in/x/ner HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
  const std::string chunked_inner = "0\r\n\r\n" + inner;
  const std::string head = "POST /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\n";
  const std::string n = std::to_string(chunked_inner.size());
  const std::vector<std::pair<std::string, int>> cases = {
      {head + "Transfer-Encoding: gzip\r\n\r\n" + inner, 501},
      {head + "Transfer-Encoding: chunked, identity\r\n\r\n" + inner, 400},
      {head + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked_inner, 501},
      {head + "Transfer-Encoding : chunked\r\n\r\n" + chunked_inner, 400},
      {head + "Transfer-Encoding: chunked\r\nContent-Length: " + n + "\r\n\r\n" + chunked_inner,
       400},
      {head + "Content-Length: " + n + "\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_inner,
       400},
      {head + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + inner, 400},
      {"POST /v1/echo/a/x/b HTTP/1.1\r\nContent-Length: 0\r\n\r\n" + inner, 400},
      {"POST /v1/echo/a/x/b HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked_inner, 400},
      {"POST /v1/echo/a/x/b HTTP/1.1\nHost: x\nContent-Length: 0\n\n" + inner, 400},
      {"POST /v1/echo/a/x/b HTTP/3.0\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + inner, 400},
  };
  for (const auto& [request, status] : cases) {
    const std::string reply = raw(request);  // returns once the server closed the connection
    EXPECT_EQ(statuses(reply), std::vector<int>{status}) << request << "\n---\n" << reply;
  }
  EXPECT_EQ(hits_.load(), 0);  // neither the outer nor the hidden request reached the handler
  // A well-framed chunked body is fine.
  const std::string good = raw(head + "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" +
                               "2\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(statuses(good), std::vector<int>{200}) << good;
}

TEST_F(HttpTest, EveryRequestGetsAValidJsonAnswer) {
  const std::string bad_path =
      raw("GET /v1/\xff\xfe%C3%28 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(statuses(bad_path), std::vector<int>{404}) << bad_path;
  const auto body = nlohmann::json::parse(bad_path.substr(bad_path.find("\r\n\r\n") + 4));
  EXPECT_EQ(body["error"], "no such endpoint: GET /v1/\\xff\\xfe\\xc3(");
  const std::string bad_json =
      raw("POST /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
          "Content-Length: 11\r\n\r\n{\"k\": \"\xff\xfe\"}");
  ASSERT_EQ(statuses(bad_json), std::vector<int>{400}) << bad_json;
  EXPECT_THAT(bad_json, HasSubstr("malformed JSON"));
  EXPECT_NO_THROW(nlohmann::json::parse(bad_json.substr(bad_json.find("\r\n\r\n") + 4)).dump());
  Client c(at(url_));
  Response r = c.request("GET", "/v1/bad-reply");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.json_body()["error"], "the reply could not be sent: header 'X-Split'");
  r = c.request("GET", "/v1/throws-anything");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.json_body()["error"], "the handler failed");
}

TEST(HttpResponse, TextThatIsNotUtf8NeverThrows) {
  const std::string bytes = "a\xff\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80 ok \xe2\x82\xac";
  Response e;
  ASSERT_NO_THROW(e = Response::error(400, bytes));
  EXPECT_EQ(e.json_body()["error"],
            "a\\xff\\xc3(\\xed\\xa0\\x80\\xf4\\x90\\x80\\x80 ok \xe2\x82\xac");
  Response j;
  ASSERT_NO_THROW(j = Response::json(200, {{"v", bytes}}));
  EXPECT_NO_THROW(j.json_body().dump());
}

TEST_F(HttpTest, StreamsBodiesBothWays) {
  const std::string path = "/tmp/tv-http-test-" + std::to_string(::getpid());
  {
    std::ofstream out(path, std::ios::binary);
    std::string chunk(1 << 20, '\0');
    for (int i = 0; i < 24; ++i) {
      for (std::size_t k = 0; k < chunk.size(); ++k)
        chunk[k] = static_cast<char>((k * 31 + i) & 0xff);
      out << chunk;
    }
  }
  Client c(at(url_));
  const Response up = c.send_file("PUT", "/v1/blob", path);  // 24 MiB, far above max_body_bytes
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_EQ(up.json_body()["bytes"], 24u << 20);
  const std::string expected = [&] {
    std::string cmd = "sha256sum " + path;
    FILE* p = ::popen(cmd.c_str(), "r");
    char buf[65] = {};
    std::fread(buf, 1, 64, p);
    ::pclose(p);
    return std::string(buf);
  }();
  EXPECT_EQ(up.json_body()["sha256"], expected);
  const std::string back = path + ".back";
  const Response down = c.download("/v1/file/" + fs::path(path).filename().string(), back);
  EXPECT_EQ(down.status, 200);
  EXPECT_EQ(fs::file_size(back), 24u << 20);
  const Response missing = c.download("/v1/file/no-such-file", back + "2");
  EXPECT_EQ(missing.status, 500);
  EXPECT_FALSE(fs::exists(back + "2"));
  fs::remove(path);
  fs::remove(back);
}

TEST_F(HttpTest, ASizedBodyIsReadWholeOrReportedCutShort) {
  // Header and body in one write: the body's first bytes arrive with the header.
  const std::string body = "0123456789";
  const std::string whole =
      raw("PUT /v1/blob HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
          "Content-Length: 10\r\n\r\n" +
          body);
  EXPECT_THAT(whole, HasSubstr("HTTP/1.1 200"));
  EXPECT_THAT(whole, HasSubstr("\"bytes\":10"));
  // 10 of 100000 announced bytes, then the client stops sending.
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), server_->port()});
  boost::asio::write(s, boost::asio::buffer("PUT /v1/blob HTTP/1.1\r\nHost: x\r\n"
                                            "Content-Length: 100000\r\n\r\n" +
                                            body));
  s.shutdown(boost::asio::ip::tcp::socket::shutdown_send);
  const std::string reply = read_all(s);
  EXPECT_THAT(reply, HasSubstr("HTTP/1.1 500"));
  EXPECT_THAT(reply, HasSubstr("reading the request body: partial message"));
}

TEST(HttpClient, AFileThatShrinksWhileItIsSentFailsAtOnce) {
  const std::string path = "/tmp/tv-http-shrink-" + std::to_string(::getpid());
  constexpr std::uintmax_t kSize = 64u << 20;  // far more than the sockets' buffers hold
  {
    std::ofstream out(path, std::ios::binary);
    const std::string chunk(1 << 20, 'x');
    for (std::uintmax_t i = 0; i < kSize / chunk.size(); ++i)
      out << chunk;
  }
  // The handler empties the file once the first bytes have arrived, then reads on: the client
  // meets the new end of the file while the server still waits for the announced bytes.
  std::atomic<bool> truncated{false};
  std::vector<Route> r{{"PUT", "/v1/blob",
                        [&](Request&, BodyStream* body) {
                          std::vector<std::byte> buf(64 * 1024);
                          while (body->read(buf) > 0) {
                            if (!truncated.exchange(true)) fs::resize_file(path, 0);
                          }
                          return Response::json(200, {{"ok", true}});
                        },
                        true}};
  Server server(ServerOptions{}, r);
  // A client that waited for a reply would see its timeout, not the file's failure.
  Client c(at("http://127.0.0.1:" + std::to_string(server.port()), {}, std::chrono::seconds(5)));
  EXPECT_THAT([&] { c.send_file("PUT", "/v1/blob", path); },
              ThrowsMessage<std::runtime_error>(
                  HasSubstr("cannot read " + path +
                            ": the file shrank while it was sent: 67108864 bytes were announced, "
                            "it ended after ")));
  EXPECT_TRUE(truncated.load());
  fs::remove(path);
}

TEST_F(HttpTest, ManyClientsAtOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      Client c(at(url_));
      for (int i = 0; i < 50; ++i) {
        const Response r =
            c.request("POST", "/v1/echo/" + std::to_string(t) + "/x/" + std::to_string(i), "{}");
        if (r.status == 200 && r.json_body()["a"] == std::to_string(t)) ++ok;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(ok.load(), 16 * 50);
}

// Whether the comparison's time depends on the contents is checked under valgrind by
// token_compare_ct (tests/fleet/token_compare_ct_main.cpp); here, that its answers are right.
TEST(HttpTokens, CompareAnswersAreRight) {
  EXPECT_TRUE(tokens_equal("abc", "abc"));
  EXPECT_FALSE(tokens_equal("abc", "abd"));
  EXPECT_FALSE(tokens_equal("xbc", "abc"));
  EXPECT_FALSE(tokens_equal("abc", "abcd"));
  EXPECT_FALSE(tokens_equal("abcd", "abc"));
  EXPECT_FALSE(tokens_equal("abc", std::string("abc\0", 4)));  // a NUL is a byte like any other
  EXPECT_FALSE(tokens_equal("", "abc"));
  EXPECT_FALSE(tokens_equal("", ""));  // an unset token never matches
  const std::string long_token(4096, 't');
  EXPECT_TRUE(tokens_equal(long_token, std::string(4096, 't')));
  std::string last = long_token;
  last.back() = 'u';
  EXPECT_FALSE(tokens_equal(long_token, last));
}

TEST(HttpClient, BadUrlsAndUnreachableServers) {
  EXPECT_THAT([] { Client(at("ftp://x")); },
              ThrowsMessage<std::invalid_argument>(
                  "coordinator URL 'ftp://x' must start with http:// or https://"));
  EXPECT_THAT(
      [] { Client(at("http://:80")); },
      ThrowsMessage<std::invalid_argument>("coordinator URL 'http://:80' has no valid host:port"));
  EXPECT_THAT([] { Client(at("http://h:8x")); },
              ThrowsMessage<std::invalid_argument>(HasSubstr("has no valid host:port")));
  const test::RefusingPort closed;
  Client c(at(closed.url(), {}, std::chrono::milliseconds(500)));
  EXPECT_THAT([&] { c.request("GET", "/v1/health"); },
              ThrowsMessage<std::runtime_error>("cannot connect to " + closed.url() +
                                                ": Connection refused"));
}

TEST(HttpServer, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  std::atomic<int> hits{0};
  ServerOptions o;
  o.idle_timeout = std::chrono::milliseconds(200);
  Server server(o, routes(hits));
  boost::asio::io_context io;
  boost::asio::ip::tcp::socket idle(io);
  idle.connect({boost::asio::ip::make_address("127.0.0.1"), server.port()});
  // Readable once the server closes it; a server that keeps it open fails here, not by timeout.
  pollfd p{idle.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 20000), 1) << "the idle connection was not closed within 20 s";
  char c = 0;
  boost::system::error_code ec;
  idle.read_some(boost::asio::buffer(&c, 1), ec);
  EXPECT_EQ(ec, boost::asio::error::eof);
  Client client(at("http://127.0.0.1:" + std::to_string(server.port())));
  EXPECT_EQ(client.request("GET", "/v1/health").status, 200);  // a busy client is unaffected
}

// Milliseconds until the server closes `s` (it becomes readable with nothing more to read); -1
// when it stays open for `limit_ms`.
long long ms_until_closed(boost::asio::ip::tcp::socket& s, int limit_ms) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto spent = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 t0)
        .count();
  };
  char buf[4096];
  while (true) {
    pollfd p{s.native_handle(), POLLIN, 0};
    if (spent() >= limit_ms || ::poll(&p, 1, static_cast<int>(limit_ms - spent())) != 1) return -1;
    boost::system::error_code ec;
    s.read_some(boost::asio::buffer(buf), ec);
    if (ec) return spent();
  }
}

TEST(HttpServer, SlowHeadsAndBodiesAreCutOffByTheirDeadlines) {
  std::atomic<int> hits{0};
  ServerOptions o;
  o.head_timeout = std::chrono::milliseconds(300);
  o.transfer_timeout = std::chrono::milliseconds(300);
  Server server(o, routes(hits));
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep{boost::asio::ip::make_address("127.0.0.1"),
                                          server.port()};
  boost::asio::ip::tcp::socket head(io), body(io);
  head.connect(ep);
  body.connect(ep);
  boost::asio::write(head, boost::asio::buffer(std::string("GET /v1/hea")));
  boost::asio::write(body,
                     boost::asio::buffer(std::string("POST /v1/echo/a/x/b HTTP/1.1\r\nHost: x\r\n"
                                                     "Content-Length: 100\r\n\r\n{")));
  EXPECT_GE(ms_until_closed(head, 20000), 0) << "a head that never ends kept its connection";
  EXPECT_GE(ms_until_closed(body, 20000), 0) << "a body that never ends kept its connection";
  EXPECT_EQ(hits.load(), 0);
  // A streamed body that stalls fails its handler's read.
  boost::asio::ip::tcp::socket upload(io);
  upload.connect(ep);
  boost::asio::write(upload, boost::asio::buffer(std::string("PUT /v1/blob HTTP/1.1\r\nHost: x\r\n"
                                                             "Content-Length: 100\r\n\r\nabc")));
  const std::string reply = read_all(upload);
  EXPECT_THAT(reply, HasSubstr("HTTP/1.1 500"));
  EXPECT_THAT(reply, HasSubstr("reading the request body: it arrived more slowly than"));
  Client client(at("http://127.0.0.1:" + std::to_string(server.port())));
  EXPECT_EQ(client.request("GET", "/v1/health").status, 200);
}

TEST(HttpServer, OnePeerGetsNoMoreThanItsShareOfConnections) {
  std::atomic<int> hits{0};
  ServerOptions o;
  o.max_connections_per_peer = 3;
  Server server(o, routes(hits));
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep{boost::asio::ip::make_address("127.0.0.1"),
                                          server.port()};
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<boost::asio::ip::tcp::socket>(io));
    held.back()->connect(ep);
  }
  boost::asio::ip::tcp::socket extra(io);
  extra.connect(ep);
  const std::string reply = read_all(extra);
  EXPECT_THAT(reply, HasSubstr("HTTP/1.1 503"));
  EXPECT_THAT(reply, HasSubstr("too many connections from 127.0.0.1 (3)"));
  held.pop_back();  // a place comes free
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (status != 200 && std::chrono::steady_clock::now() < deadline) {
    status = Client(at("http://127.0.0.1:" + std::to_string(server.port())))
                 .request("GET", "/v1/health")
                 .status;
  }
  EXPECT_EQ(status, 200);
}

TEST(HttpServer, AWebSocketSessionAnswersPingsAndCutsOffAClientThatDoesNotRead) {
  std::atomic<int> sessions_ended{0};
  std::vector<Route> r{{"GET", "/v1/stream",
                        [](Request&, BodyStream*) {
                          Response ok;
                          ok.status = 101;
                          return ok;
                        },
                        false,
                        [&](const Request& req, WebSocketSession& ws) {
                          const bool big = req.query.count("big") > 0;
                          const std::string message(big ? 16 * 1024 : 8, 'm');
                          try {
                            while (ws.open()) {
                              ws.send(message);
                              std::this_thread::sleep_for(std::chrono::milliseconds(big ? 1 : 20));
                            }
                          } catch (const std::runtime_error&) {
                          }
                          ++sessions_ended;
                        }}};
  ServerOptions o;
  o.transfer_timeout = std::chrono::milliseconds(500);
  o.max_websocket_queue_bytes = 256 * 1024;
  Server server(o, r);
  namespace bws = boost::beast::websocket;
  boost::asio::io_context io;
  const boost::asio::ip::tcp::endpoint ep{boost::asio::ip::make_address("127.0.0.1"),
                                          server.port()};
  bws::stream<boost::asio::ip::tcp::socket> ws(io);
  ws.next_layer().connect(ep);
  ws.handshake("127.0.0.1", "/v1/stream");
  bool ponged = false;
  ws.control_callback([&](bws::frame_type kind, boost::beast::string_view payload) {
    if (kind == bws::frame_type::pong && payload == "hi") ponged = true;
  });
  boost::beast::flat_buffer b;
  ws.read(b);
  ws.ping("hi");
  for (int i = 0; i < 10; ++i) {  // messages keep coming after the ping
    b.clear();
    ws.read(b);
  }
  EXPECT_TRUE(ponged);
  ws.pong("unasked");
  for (int i = 0; i < 5; ++i) {
    b.clear();
    ws.read(b);
  }
  // A client that never reads, with a small receive buffer.
  boost::asio::ip::tcp::socket raw_socket(io);
  raw_socket.open(boost::asio::ip::tcp::v4());
  raw_socket.set_option(boost::asio::socket_base::receive_buffer_size(4096));
  bws::stream<boost::asio::ip::tcp::socket> stuck(std::move(raw_socket));
  stuck.next_layer().connect(ep);
  stuck.handshake("127.0.0.1", "/v1/stream?big=1");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (sessions_ended.load() < 1 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(sessions_ended.load(), 1) << "the client that does not read was not cut off";
  for (int i = 0; i < 5; ++i) {  // the reading client was not held back
    b.clear();
    ws.read(b);
  }
  ws.close(bws::close_code::normal);
}

TEST(HttpServer, StopReturnsWhileKeptAliveClientsAreMidRequest) {
  // A request answered while stop() runs ends its connection, and its client then sits idle with
  // the connection open. Neither the server's linger nor a TLS shutdown may wait on that client.
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> hits{0};
    auto server = std::make_unique<Server>(ServerOptions{}, routes(hits));
    std::atomic<bool> stopping{false};
    const std::string url = "http://127.0.0.1:" + std::to_string(server->port());
    Client client(at(url, {}, std::chrono::milliseconds(2000)));
    // Counted by the client: the server's hit count may include a request whose answer stop()
    // cut off, so it is no measure of what was answered.
    std::atomic<int> answered{0};
    std::string unexpected;  // written by the hammer only, read after join
    std::thread hammer([&] {
      while (!stopping.load()) {
        try {
          const Response r = client.request("POST", "/v1/echo/a/x/b", "{}");
          if (r.status == 200) {
            ++answered;
          } else {
            unexpected = "status " + std::to_string(r.status) + ": " + r.body;
          }
        } catch (const std::runtime_error& e) {
          // A request cut off by stop() is expected; one failing before it is not.
          if (!stopping.load()) unexpected = e.what();
        }
      }
    });
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (answered.load() < 3 + round % 7 && unexpected.empty() &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();
    stopping.store(true);
    auto stopped = std::async(std::launch::async, [&] { server->stop(); });
    if (stopped.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      // The server and its threads cannot be torn down safely now: report and leave.
      std::fprintf(stderr, "round %d: Server::stop() waited on a kept-alive client\n", round);
      std::fflush(stderr);
      std::_Exit(1);
    }
    hammer.join();
    EXPECT_EQ(unexpected, "") << "round " << round;
    EXPECT_GE(answered.load(), 3 + round % 7) << "round " << round;
    EXPECT_GE(hits.load(), answered.load()) << "round " << round;
    // A stopped server takes no new connection.
    EXPECT_THAT(
        [&] { Client(at(url, {}, std::chrono::milliseconds(2000))).request("GET", "/v1/health"); },
        ThrowsMessage<std::runtime_error>(HasSubstr("Connection refused")));
  }
}

// The listening sockets of a port as the kernel lists them (/proc/net/tcp{,6}): local address in
// the kernel's hex form, e.g. "0100007F" for 127.0.0.1.
std::vector<std::string> listening_addresses(std::uint16_t port) {
  std::vector<std::string> out;
  char want[8];
  std::snprintf(want, sizeof want, "%04X", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      const auto colon = local.rfind(':');
      if (state == "0A" && local.substr(colon + 1) == want) out.push_back(local.substr(0, colon));
    }
  }
  return out;
}

TEST(HttpServer, TheDefaultBindIsLoopbackOnly) {
  std::atomic<int> hits{0};
  Server server(ServerOptions{}, routes(hits));
  EXPECT_EQ(listening_addresses(server.port()), std::vector<std::string>{"0100007F"});
  ServerOptions any;
  any.bind = "0.0.0.0";
  Server everywhere(any, routes(hits));
  EXPECT_EQ(listening_addresses(everywhere.port()), std::vector<std::string>{"00000000"});
  ServerOptions bad;
  bad.bind = "localhost";
  EXPECT_THAT([&] { Server(bad, routes(hits)); },
              ThrowsMessage<std::runtime_error>("cannot listen on 'localhost': not an IP address"));
}

// The per-request hook sees each routed request once, by its pattern (not its path), with the
// status sent, a 413 included; requests that matched no route are not seen.
TEST(HttpServer, OnRequestSeesEachRoutedRequestByItsPattern) {
  struct Seen {
    std::string pattern, method;
    int status;
    std::chrono::nanoseconds duration;
  };
  std::mutex mu;
  std::vector<Seen> seen;
  ServerOptions o;
  o.max_body_bytes = 64;
  o.on_request = [&](const RequestObservation& r) {
    std::lock_guard lock(mu);
    seen.push_back({std::string(r.pattern), std::string(r.method), r.status, r.duration});
  };
  std::atomic<int> hits{0};
  Server server(o, routes(hits));
  Client c(at("http://127.0.0.1:" + std::to_string(server.port())));
  EXPECT_EQ(c.request("POST", "/v1/echo/1/x/2", "{}").status, 200);
  EXPECT_EQ(c.request("POST", "/v1/echo/1/x/2", std::string(100, ' ')).status, 413);
  EXPECT_EQ(c.request("GET", "/nowhere").status, 404);
  EXPECT_EQ(c.request("GET", "/v1/health").status, 200);
  std::lock_guard lock(mu);
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].pattern, "/v1/echo/{a}/x/{b}");
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].status, 200);
  EXPECT_GT(seen[0].duration.count(), 0);
  EXPECT_EQ(seen[1].status, 413);
  EXPECT_EQ(seen[2].pattern, "/v1/health");
  EXPECT_EQ(seen[2].method, "GET");
}

TEST(HttpClient, AServerThatNeverAnswersCostsOneTimeout) {
  // A listening socket whose connections are accepted by the kernel and never read or answered,
  // like a stopped (SIGSTOP) coordinator.
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor silent(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  Client c(at("http://127.0.0.1:" + std::to_string(silent.local_endpoint().port()), {},
              std::chrono::milliseconds(300)));
  const auto t0 = std::chrono::steady_clock::now();
  auto call = std::async(std::launch::async, [&] { c.request("GET", "/v1/health"); });
  // A hang shows as this wait expiring (the call is abandoned with the process).
  if (call.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    std::fprintf(stderr, "a request to a silent server did not end within 30 s\n");
    std::fflush(stderr);
    std::_Exit(1);
  }
  EXPECT_THAT([&] { call.get(); }, ThrowsMessage<std::runtime_error>(
                                       HasSubstr("The socket was closed due to a timeout")));
  // It waited for its timeout rather than giving up at once.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300));
}

TEST(HttpTls, RoundTripWithVerifiedCertificate) {
  const fs::path dir = fs::temp_directory_path() / ("tv-tls-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a certificate";
  std::atomic<int> hits{0};
  ServerOptions o;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  Server server(o, routes(hits));
  const std::string url = "https://localhost:" + std::to_string(server.port());
  Client c(at(url, cert));
  const Response r = c.request("POST", "/v1/echo/a/x/b", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  // A client that trusts another certificate refuses this server.
  const std::string other = (dir / "other.pem").string();
  const std::string cmd2 =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost -keyout " +
      (dir / "other-key.pem").string() + " -out " + other + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd2.c_str()), 0);
  Client untrusting(at(url, other));
  EXPECT_THAT(
      [&] { untrusting.request("GET", "/v1/health"); },
      ThrowsMessage<std::runtime_error>(HasSubstr("TLS handshake with " + url + " failed")));
  EXPECT_THAT([&] { untrusting.request("GET", "/v1/health"); },
              ThrowsMessage<std::runtime_error>(HasSubstr("certificate verify failed")));
  // A plain-HTTP client gets nothing useful from a TLS port.
  const std::string plain_url = "http://127.0.0.1:" + std::to_string(server.port());
  Client plain(at(plain_url, {}, std::chrono::milliseconds(2000)));
  EXPECT_THAT([&] { plain.request("GET", "/v1/health"); },
              ThrowsMessage<std::runtime_error>(HasSubstr("reading from " + plain_url)));
  ServerOptions bad;
  bad.tls_cert_file = (dir / "missing.pem").string();
  bad.tls_key_file = key;
  EXPECT_THAT(
      [&] { Server(bad, {}); },
      ThrowsMessage<std::runtime_error>(HasSubstr("TLS certificate '" + bad.tls_cert_file + "'")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tv::http
