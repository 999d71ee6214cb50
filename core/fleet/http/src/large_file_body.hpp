// A Beast Body (BodyWriter and BodyReader) for a message whose body is a file, moved in pieces of
// up to kFilePiece bytes. Beast's own file_body reads a file through a fixed 4 KiB buffer: sending
// 1 GiB that way costs 262,144 socket writes (each with its deadline re-armed by the client),
// more than hashing and storing the bytes at the other end.
//
// Sending: the file's size is taken when it is opened and becomes the Content-Length; a file that
// then shrinks ends the write with an error and value_type::failure() says what happened (the
// bytes already sent cannot be taken back, so the connection is unusable). Receiving: the bytes
// are written to the file as they arrive, in the pieces the parser hands over; a failed write
// ends the read with an error and failure() says so.
//
// Each writer holds one kFilePiece buffer for the life of the message. Not thread-safe: a message
// belongs to one thread.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/file.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

namespace tv::http {

inline constexpr std::size_t kFilePiece = std::size_t{1} << 20;

struct LargeFileBody {
  class value_type {
   public:
    // Opens `path` to be sent (its size is taken now) or to receive a body (created or
    // truncated). On failure `ec` is set and the body stays closed.
    void open_read(const std::string& path, boost::beast::error_code& ec) {
      open(path, boost::beast::file_mode::scan, ec);
      if (!ec) size_ = file_.size(ec);
    }
    void open_write(const std::string& path, boost::beast::error_code& ec) {
      open(path, boost::beast::file_mode::write, ec);
    }
    bool is_open() const { return file_.is_open(); }
    std::uint64_t size() const { return size_; }
    const std::string& path() const { return path_; }
    // Why the last transfer of this body failed on the file's side; empty when it did not.
    const std::string& failure() const { return failure_; }

   private:
    friend struct LargeFileBody;
    void open(const std::string& path, boost::beast::file_mode mode, boost::beast::error_code& ec) {
      path_ = path;
      size_ = 0;
      failure_.clear();
      file_.open(path.c_str(), mode, ec);
    }
    boost::beast::file file_;
    std::uint64_t size_ = 0;
    std::string path_;
    std::string failure_;
  };

  static std::uint64_t size(const value_type& body) { return body.size_; }

  class writer {
   public:
    using const_buffers_type = boost::asio::const_buffer;

    template <bool isRequest, class Fields>
    writer(boost::beast::http::header<isRequest, Fields>&, value_type& body)
        : body_(body), remain_(body.size_) {}

    void init(boost::beast::error_code& ec) {
      buf_ = std::make_unique<char[]>(kFilePiece);
      sent_ = 0;
      ec = {};
    }

    // The next piece. beast::file's read returns less than asked only at the end of the file.
    boost::optional<std::pair<const_buffers_type, bool>> get(boost::beast::error_code& ec) {
      ec = {};
      const std::size_t want =
          remain_ < kFilePiece ? static_cast<std::size_t>(remain_) : kFilePiece;
      if (want == 0) return boost::none;
      const std::size_t got = body_.file_.read(buf_.get(), want, ec);
      if (ec) {
        body_.failure_ =
            "reading it failed after " + std::to_string(sent_ + got) + " bytes: " + ec.message();
        return boost::none;
      }
      if (got < want) {
        body_.failure_ = "the file shrank while it was sent: " + std::to_string(body_.size_) +
                         " bytes were announced, it ended after " + std::to_string(sent_ + got);
        ec = boost::beast::http::error::short_read;
        return boost::none;
      }
      remain_ -= got;
      sent_ += got;
      return {{const_buffers_type{buf_.get(), got}, remain_ > 0}};
    }

   private:
    value_type& body_;
    std::uint64_t remain_;
    std::uint64_t sent_ = 0;
    std::unique_ptr<char[]> buf_;
  };

  class reader {
   public:
    template <bool isRequest, class Fields>
    reader(boost::beast::http::header<isRequest, Fields>&, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>&, boost::beast::error_code& ec) { ec = {}; }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, boost::beast::error_code& ec) {
      ec = {};
      std::size_t written = 0;
      for (auto it = boost::asio::buffer_sequence_begin(buffers);
           it != boost::asio::buffer_sequence_end(buffers); ++it) {
        const boost::asio::const_buffer b = *it;
        written += body_.file_.write(b.data(), b.size(), ec);  // whole, or an error
        if (ec) {
          body_.failure_ = "writing it failed: " + ec.message();
          break;
        }
      }
      body_.size_ += written;
      return written;
    }

    void finish(boost::beast::error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

}  // namespace tv::http
