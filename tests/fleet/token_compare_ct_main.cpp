// Shows under valgrind's memcheck that tv::http::tokens_equal never branches on, or indexes
// memory by, the tokens' contents: the contents are marked undefined, as a secret, so memcheck
// reports any conditional jump or address that depends on them (the method of A. Langley's
// ctgrind). Only the lengths stay defined: they are not secret.
//
//   token_compare_ct            exit 0 and no memcheck error: the comparison is constant-time
//   token_compare_ct --control  the same checks on an early-exit comparison, which memcheck must
//                               report: proof that this program can fail
#include <valgrind/memcheck.h>

#include <cstdio>
#include <string>
#include <vector>

#include "trainvisor/fleet/http.hpp"

namespace {

// What a naive implementation does: stops at the first difference.
bool early_exit_equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) return false;
  }
  return !a.empty();
}

}  // namespace

int main(int argc, char** argv) {
  const bool control = argc > 1 && std::string(argv[1]) == "--control";
  if (!RUNNING_ON_VALGRIND) {
    std::fprintf(stderr, "token_compare_ct: run under valgrind --tool=memcheck\n");
    return 2;
  }
  const std::string secret = "0123456789abcdef0123456789abcdef";
  struct Case {
    std::string presented;
    bool equal;
  };
  std::vector<Case> cases = {{secret, true},
                             {"x" + secret.substr(1), false},
                             {secret.substr(0, 16) + "x" + secret.substr(17), false},
                             {secret.substr(0, 31) + "x", false},
                             {secret + "x", false},
                             {secret.substr(0, 8), false}};
  int wrong = 0;
  for (Case& c : cases) {
    std::string expected = secret;
    VALGRIND_MAKE_MEM_UNDEFINED(expected.data(), expected.size());
    VALGRIND_MAKE_MEM_UNDEFINED(c.presented.data(), c.presented.size());
    bool equal = control ? early_exit_equal(c.presented, expected)
                         : tv::http::tokens_equal(c.presented, expected);
    // The answer itself is allowed to be known.
    VALGRIND_MAKE_MEM_DEFINED(&equal, sizeof equal);
    if (equal != c.equal) ++wrong;
  }
  if (wrong != 0) std::fprintf(stderr, "token_compare_ct: %d wrong answers\n", wrong);
  return wrong == 0 ? 0 : 1;
}
