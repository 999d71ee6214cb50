// The server's end of an accepted WebSocket (server-push): messages from the session's thread are
// queued and written by the stream's executor, one at a time, each under a write deadline; the
// client's frames are read all along, so its pings are answered and its pongs ignored by the
// stream itself, while a close ends the session, and so does a data frame unless the route takes
// client messages (WsLimits::client_messages): then its messages wait in a bounded inbox for
// receive(), and a client that sends more than max_inbox of them unread is cut off. A client that
// reads too slowly (the queue over its bound, or a write stalled past its deadline) is cut off: its
// socket closed. Private to tv_http; the fuzz target drives it over an in-memory stream.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <boost/asio/bind_cancellation_slot.hpp>

#include "beast.hpp"
#include "trainvisor/fleet/http.hpp"

namespace tv::http {

struct WsLimits {
  std::size_t max_queue_bytes = 4 << 20;
  std::chrono::milliseconds write_timeout{10000};
  std::size_t max_message_bytes = 64 * 1024;  // a client's frame
  bool client_messages = false;               // false: a client's data frame ends the session
  std::size_t max_inbox = 16;                 // client messages waiting for receive()
};

template <class WsStream>
class WsSession final : public WebSocketSession,
                        public std::enable_shared_from_this<WsSession<WsStream>> {
 public:
  // `owner` keeps `ws` alive while an operation of the session may still run.
  WsSession(WsStream& ws, std::shared_ptr<void> owner, WsLimits limits,
            const std::atomic<bool>& stopping)
      : ws_(ws),
        owner_(std::move(owner)),
        limits_(limits),
        stopping_(stopping),
        write_timer_(ws.get_executor()),
        close_timer_(ws.get_executor()) {}

  // On the stream's executor: starts reading the client's frames.
  void start() {
    ws_.read_message_max(limits_.max_message_bytes);
    read();
  }

  void send(const std::string& text) override {
    {
      std::lock_guard lock(mu_);
      if (closed_ || stopping_.load()) throw std::runtime_error("websocket: closed" + why());
      if (queued_bytes_ + text.size() > limits_.max_queue_bytes) {
        end_locked("the client does not read: " + std::to_string(queued_bytes_) +
                   " bytes wait to be sent");
        post([self = this->shared_from_this()] { self->cut(); });
        throw std::runtime_error("websocket: closed" + why());
      }
      queue_.push_back(text);
      queued_bytes_ += text.size();
      if (writing_) return;
      writing_ = true;
    }
    post([self = this->shared_from_this()] { self->write_next(); });
  }

  bool open() override {
    std::lock_guard lock(mu_);
    return !closed_ && !stopping_.load();
  }

  std::optional<std::string> receive(std::chrono::milliseconds timeout) override {
    std::unique_lock lock(mu_);
    arrived_.wait_for(lock, timeout, [&] { return !inbox_.empty() || closed_ || stopping_; });
    if (inbox_.empty()) return std::nullopt;
    std::string out = std::move(inbox_.front());
    inbox_.pop_front();
    return out;
  }

  void close(const std::string& reason) override {
    {
      std::lock_guard lock(mu_);
      // A close frame's reason holds at most 123 bytes.
      close_reason_ = reason.substr(0, 123);
    }
    finish();
  }

  // Once the session's function has returned: sends what is queued, then the close handshake
  // (under the write deadline), unless the connection is already over.
  void finish() {
    post([self = this->shared_from_this()] {
      std::unique_lock lock(self->mu_);
      self->finishing_ = true;
      if (self->closed_ || self->writing_) return;  // the last write closes
      lock.unlock();
      self->close_as_asked();
    });
  }

  // Why the session ended, empty while it is open.
  std::string reason() const {
    std::lock_guard lock(mu_);
    return reason_;
  }

 private:
  template <class F>
  void post(F f) {
    asio::post(ws_.get_executor(), std::move(f));
  }

  std::string why() const { return reason_.empty() ? "" : ": " + reason_; }

  void end_locked(const std::string& reason) {
    if (!closed_) reason_ = reason;
    closed_ = true;
    arrived_.notify_all();
  }
  void end(const std::string& reason) {
    std::lock_guard lock(mu_);
    end_locked(reason);
  }

  void read() {
    ws_.async_read(in_, asio::bind_cancellation_slot(
                            read_cancel_.slot(),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) {
                                self->in_.clear();
                                return self->end(ec == ws::error::closed
                                                     ? "the client closed the connection"
                                                     : ec.message());
                              }
                              if (self->limits_.client_messages) return self->take_message();
                              self->in_.clear();
                              // The protocol is server-push: a client's message is a client
                              // that does not speak it.
                              self->end("the client sent a data frame");
                              self->close(ws::close_code::policy_error);
                            }));
  }

  // A client's message, into the inbox; then the next one is read.
  void take_message() {
    std::string text = beast::buffers_to_string(in_.data());
    in_.clear();
    {
      std::lock_guard lock(mu_);
      if (inbox_.size() >= limits_.max_inbox) {
        end_locked("the client sent " + std::to_string(inbox_.size() + 1) +
                   " messages that were not read yet");
        post([self = this->shared_from_this()] { self->cut(); });
        return;
      }
      inbox_.push_back(std::move(text));
      arrived_.notify_all();
    }
    read();
  }

  void write_next() {
    enum { kIdle, kWrite, kClose } next = kIdle;
    {
      std::lock_guard lock(mu_);
      if (!closed_ && !queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        next = kWrite;
      } else {
        writing_ = false;
        if (!closed_ && finishing_) next = kClose;
      }
    }
    if (next == kClose) return close_as_asked();
    if (next == kIdle) return;
    arm(write_timer_, "a message was not taken within ");
    ws_.text(true);
    ws_.async_write(
        asio::buffer(current_),
        asio::bind_cancellation_slot(write_cancel_.slot(), [self = this->shared_from_this()](
                                                               beast::error_code ec, std::size_t) {
          self->write_timer_.cancel();
          {
            std::lock_guard lock(self->mu_);
            self->queued_bytes_ -= self->current_.size();
            self->current_.clear();
            if (ec) self->end_locked("sending: " + ec.message());
          }
          self->write_next();
        }));
  }

  // The close the session asked for (close(reason): a policy violation with its reason), or a
  // normal one.
  void close_as_asked() {
    std::string reason;
    {
      std::lock_guard lock(mu_);
      reason = close_reason_;
    }
    if (reason.empty()) return close(ws::close_code::normal);
    close(ws::close_reason(ws::close_code::policy_error, reason));
  }

  // Starts the close handshake once: Beast allows one close per stream, and a client's data
  // frame may arrive while the session's own close is under way.
  void close(const ws::close_reason& code) {
    {
      std::lock_guard lock(mu_);
      end_locked("the session ended");
      if (close_started_) return;
      close_started_ = true;
    }
    arm(close_timer_, "the close was not answered within ");
    ws_.async_close(
        code, asio::bind_cancellation_slot(close_cancel_.slot(),
                                           [self = this->shared_from_this()](beast::error_code) {
                                             self->close_timer_.cancel();
                                           }));
  }

  // The deadline of the write or close now starting: past it, the client is cut off.
  void arm(asio::steady_timer& timer, const char* what) {
    timer.expires_after(limits_.write_timeout);
    timer.async_wait([self = this->shared_from_this(), what](beast::error_code ec) {
      if (ec) return;  // cancelled: the operation ended in time
      self->end(what + std::to_string(self->limits_.write_timeout.count()) + " ms");
      self->cut();
    });
  }

  // An abortive close (a reset) where the stream is a socket: the bytes the client never took
  // are dropped now rather than kept by the kernel for a reader that will not come. Closing the
  // socket ends only the operations waiting on it: a read that met a bad frame while a close
  // was being sent waits for the write lock the close holds, and the close for the read lock
  // (Beast 1.81 suspends both with nothing pending on the socket), so every operation of the
  // session is also cancelled, which completes a suspended one too.
  void cut() {
    auto& lowest = beast::get_lowest_layer(ws_);
    if constexpr (requires { lowest.socket(); }) {
      beast::error_code ec;
      lowest.socket().set_option(asio::socket_base::linger(true, 0), ec);
    }
    lowest.close();
    for (auto* signal : {&read_cancel_, &write_cancel_, &close_cancel_})
      signal->emit(asio::cancellation_type::terminal);
  }

  WsStream& ws_;
  std::shared_ptr<void> owner_;
  const WsLimits limits_;
  const std::atomic<bool>& stopping_;
  asio::steady_timer write_timer_;
  asio::steady_timer close_timer_;
  asio::cancellation_signal read_cancel_, write_cancel_, close_cancel_;
  beast::flat_buffer in_;
  mutable std::mutex mu_;  // guards what follows (send() runs on the session's thread)
  std::deque<std::string> queue_;
  std::deque<std::string> inbox_;  // the client's messages (client_messages only)
  std::condition_variable arrived_;
  std::string close_reason_;
  std::size_t queued_bytes_ = 0;
  std::string current_;
  bool writing_ = false;
  bool finishing_ = false;
  bool closed_ = false;
  bool close_started_ = false;
  std::string reason_;
};

}  // namespace tv::http
