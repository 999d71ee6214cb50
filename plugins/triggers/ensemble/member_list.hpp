// The ensemble's `members` parameter: a list of triggers with their parameters as text,
//
//   data_count(every=500); time(every_s=3600); data_drift
//
// Members are separated by ';'. A member is a plugin name ([a-z0-9_-]+), optionally followed by
// parameters in parentheses: key=value pairs ([a-z0-9_]+ keys) separated by ','. A value is
// either bare (any characters but , ; ( ) = " and white space, e.g. 0.05 or mmd) or a string in
// double quotes, in which \" and \\ stand for " and \ (so that an ensemble can be a member:
// ensemble(members="time(every_s=60); data_count(every=10)", mode=all)). White space between
// tokens is ignored. Parsing is strict: an empty member, a repeated key, a missing '=' or ')'
// is an error that names the 1-based character position and the problem.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tv::triggers {

struct MemberSpec {
  std::string plugin;
  std::map<std::string, std::string> params;
};

class MemberListParser {
 public:
  explicit MemberListParser(std::string_view text) : text_(text) {}

  // The members; nothing with error() set on the first problem.
  std::optional<std::vector<MemberSpec>> parse() {
    std::vector<MemberSpec> members;
    while (true) {
      MemberSpec member;
      if (!parse_member(member)) return std::nullopt;
      members.push_back(std::move(member));
      skip_space();
      if (at_end()) return members;
      if (!expect(';', "';' between members")) return std::nullopt;
    }
  }

  const std::string& error() const { return error_; }

 private:
  bool parse_member(MemberSpec& member) {
    skip_space();
    if (at_end() || peek() == ';') return fail("a member (a trigger plugin name) is missing");
    member.plugin = word([](char c) { return name_char(c) || c == '-'; });
    if (member.plugin.empty()) return fail_expected("a trigger plugin name");
    skip_space();
    if (at_end() || peek() != '(') return true;
    ++pos_;
    skip_space();
    if (!at_end() && peek() == ')') {
      ++pos_;
      return true;
    }
    while (true) {
      if (!parse_param(member)) return false;
      skip_space();
      if (!at_end() && peek() == ',') {
        ++pos_;
        continue;
      }
      return expect(')', "',' or ')' after a parameter of '" + member.plugin + "'");
    }
  }

  bool parse_param(MemberSpec& member) {
    skip_space();
    const std::size_t key_pos = pos_;
    std::string key = word(name_char);
    if (key.empty()) {
      return fail_expected("a parameter name of '" + member.plugin + "'");
    }
    skip_space();
    if (!expect('=', "'=' after '" + key + "'")) return false;
    skip_space();
    std::string value;
    if (!parse_value(key, value)) return false;
    if (!member.params.emplace(key, std::move(value)).second) {
      pos_ = key_pos;
      return fail("parameter '" + key + "' of '" + member.plugin + "' is given twice");
    }
    return true;
  }

  bool parse_value(const std::string& key, std::string& value) {
    if (!at_end() && peek() == '"') {
      const std::size_t open = pos_++;
      while (!at_end() && peek() != '"') {
        if (peek() == '\\' && pos_ + 1 < text_.size() &&
            (text_[pos_ + 1] == '"' || text_[pos_ + 1] == '\\')) {
          ++pos_;
        }
        value += text_[pos_++];
      }
      if (at_end()) {
        pos_ = open;
        return fail("the quoted value of '" + key + "' opened here is not closed");
      }
      ++pos_;
      return true;
    }
    value = word([](char c) {
      return c != ',' && c != ';' && c != '(' && c != ')' && c != '=' && c != '"' && !is_space(c);
    });
    if (value.empty()) return fail_expected("a value for '" + key + "'");
    return true;
  }

  static bool name_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  }
  static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

  template <class Accept>
  std::string word(Accept accept) {
    const std::size_t start = pos_;
    while (!at_end() && accept(peek()))
      ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  void skip_space() {
    while (!at_end() && is_space(peek()))
      ++pos_;
  }

  bool expect(char c, const std::string& what) {
    if (!at_end() && peek() == c) {
      ++pos_;
      return true;
    }
    return fail_expected(what);
  }

  // What stands at the current position, in words.
  std::string found_text() const {
    return at_end() ? std::string("the end") : "'" + std::string(1, peek()) + "'";
  }
  bool fail_expected(const std::string& what) {
    return fail("expected " + what + ", found " + found_text());
  }

  bool fail(const std::string& problem) {
    error_ = "character " + std::to_string(pos_ + 1) + ": " + problem;
    return false;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace tv::triggers
