#include "trainvisor/shm/block_name.hpp"

#include <gtest/gtest.h>

#include <string>

#include "test_support.hpp"
#include "trainvisor/shm/value.hpp"

namespace tv::shm {
namespace {

using test::error_of;

TEST(BlockName, DerivedFromJobId) {
  EXPECT_EQ(block_name_for_job("3f9a-mlp_v2.1"), "trainvisor.3f9a-mlp_v2.1");
  EXPECT_EQ(block_name_from_user("abc"), "trainvisor.abc");
  EXPECT_EQ(block_name_from_user("trainvisor.abc"), "trainvisor.abc");
}

TEST(BlockName, BadJobIdsAreNamedWithTheReason) {
  EXPECT_NE(error_of([] { block_name_for_job("jobs/../etc"); }).find("'jobs/../etc'"),
            std::string::npos);
  EXPECT_NE(error_of([] { block_name_for_job("jobs/x"); }).find("character '/' at position 4"),
            std::string::npos);
  EXPECT_NE(error_of([] { block_name_for_job(""); }).find("empty"), std::string::npos);
  EXPECT_NE(error_of([] { block_name_for_job(".hidden"); }).find("start with a letter or digit"),
            std::string::npos);
  EXPECT_NE(error_of([] { block_name_for_job(std::string(201, 'a')); }).find("201 bytes"),
            std::string::npos);
  EXPECT_NE(error_of([] { block_name_for_job("a b"); }).find("character ' '"), std::string::npos);
}

TEST(BlockName, BlockNamesNeedThePrefix) {
  const std::string e = error_of([] { validate_block_name("other.x"); });
  EXPECT_NE(e.find("'other.x'"), std::string::npos) << e;
  EXPECT_NE(e.find("trainvisor."), std::string::npos) << e;
  EXPECT_NE(error_of([] { validate_block_name("trainvisor.a/b"); }).find("'trainvisor.a/b'"),
            std::string::npos);
  EXPECT_EQ(error_of([] { validate_block_name("trainvisor.ok-1"); }), "no error");
}

}  // namespace
}  // namespace tv::shm
