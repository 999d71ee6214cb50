// The dashboard's bundle, served from CoordinatorOptions::web_root to anyone (it holds no data:
// the page reads through the API with the reader's token): GET / is index.html, GET
// /assets/NAME a file of web_root/assets. A name with "..", a slash or a backslash, or one that
// resolves (through a symbolic link) outside web_root, is refused; a missing bundle is a 404
// saying the dashboard is not built.
//
// Caching: index.html is "no-cache" (revalidated on every load, so a new bundle shows at once);
// an asset whose name carries a content hash (esbuild's "[name]-[hash]": a stem ending in "-"
// and 8 or more letters and digits) is immutable for a year; any other asset is "no-cache".
#include <algorithm>
#include <cctype>
#include <filesystem>

#include "coordinator_state.hpp"

namespace tv::fleet::coordinator {
namespace {

namespace fs = std::filesystem;
using http::BodyStream;
using http::Request;
using http::Response;

constexpr std::pair<std::string_view, std::string_view> kContentTypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".woff2", "font/woff2"},
};

std::optional<std::string_view> content_type(const fs::path& file) {
  const std::string ext = file.extension().string();
  for (const auto& [e, type] : kContentTypes) {
    if (e == ext) return type;
  }
  return std::nullopt;
}

Response text(int status, const std::string& body) {
  Response r;
  r.status = status;
  r.content_type = "text/plain; charset=utf-8";
  r.body = body + "\n";
  return r;
}

Response not_built(const CoordinatorState& s) {
  const std::string root = s.options.web_root.empty() ? "(no web root)" : s.options.web_root;
  return text(404, "the dashboard is not built: no index.html in " + root +
                       " (build the web/ bundle, or start the coordinator with --web-root DIR); "
                       "the API under /v1 works without it");
}

// A stem like "app-5KQ2ZJ3A": esbuild's content-hashed names.
bool content_hashed(const fs::path& file) {
  const std::string stem = file.stem().string();
  const auto dash = stem.rfind('-');
  if (dash == std::string::npos || stem.size() - dash - 1 < 8) return false;
  return std::all_of(stem.begin() + static_cast<std::ptrdiff_t>(dash) + 1, stem.end(),
                     [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; });
}

// `relative` under the web root, resolved; nullopt when it is not a regular file inside it.
std::optional<fs::path> inside_root(const CoordinatorState& s, const fs::path& relative) {
  if (s.options.web_root.empty()) return std::nullopt;
  std::error_code ec;
  const fs::path root = fs::canonical(s.options.web_root, ec);
  if (ec) return std::nullopt;
  const fs::path file = fs::canonical(root / relative, ec);
  if (ec || !fs::is_regular_file(file, ec)) return std::nullopt;
  const std::string prefix = root.string() + "/";
  if (file.string().compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  return file;
}

Response serve(const fs::path& file, bool immutable) {
  Response r;
  r.file_path = file.string();
  r.content_type = std::string(*content_type(file));
  r.headers.emplace_back("Cache-Control",
                         immutable ? "public, max-age=31536000, immutable" : "no-cache");
  return r;
}

Response index_get(const CoordinatorState& s) {
  const auto file = inside_root(s, "index.html");
  return file ? serve(*file, false) : not_built(s);
}

Response asset_get(const CoordinatorState& s, const std::string& name) {
  if (name.empty() || name == "." || name.find("..") != std::string::npos ||
      name.find_first_of(std::string("/\\\0", 3)) != std::string::npos) {
    return text(400, "asset name '" + name + "' refused: it must be a plain file name");
  }
  if (!content_type(name)) {
    return text(404, "asset '" + name + "': not a served type (html, js, css, svg, png, json, " +
                         "map, woff2)");
  }
  if (!inside_root(s, "index.html")) return not_built(s);
  const auto file = inside_root(s, fs::path("assets") / name);
  if (!file) return text(404, "no asset '" + name + "' in the dashboard's bundle");
  return serve(*file, content_hashed(*file));
}

}  // namespace

std::vector<std::pair<std::string, std::string>> security_headers() {
  return {{"Content-Security-Policy",
           "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
           "frame-ancestors 'none'"},
          {"X-Content-Type-Options", "nosniff"},
          {"Referrer-Policy", "no-referrer"},
          {"Cache-Control", "no-store"}};
}

void add_web_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"GET", "/", [&s](Request&, BodyStream*) { return index_get(s); }});
  r.push_back({"GET", "/assets/{name}",
               [&s](Request& req, BodyStream*) { return asset_get(s, req.params[0]); }});
}

}  // namespace tv::fleet::coordinator
