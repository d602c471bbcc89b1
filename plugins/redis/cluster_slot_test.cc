// KeySlot against the values the Redis Cluster specification gives, and its
// hash-tag rules. (redis_cluster_test.cc compares it with a live cluster's
// CLUSTER KEYSLOT.)
#include "cluster_slot.h"

#include <gtest/gtest.h>

namespace stowage::redis {
namespace {

TEST(KeySlotTest, IsCrc16XmodemModulo16384) {
  // The specification's check value: CRC16("123456789") = 0x31C3.
  EXPECT_EQ(KeySlot("123456789"), 0x31C3);
  EXPECT_EQ(KeySlot("foo"), 12182);
  EXPECT_EQ(KeySlot(""), 0);
}

TEST(KeySlotTest, HashesOnlyTheFirstNonEmptyHashTag) {
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("{user1000}.followers"));
  EXPECT_EQ(KeySlot("{user1000}.following"), KeySlot("user1000"));
  EXPECT_EQ(KeySlot("foo{bar}{zap}"), KeySlot("bar"));
  EXPECT_EQ(KeySlot("foo{{bar}}zap"), KeySlot("{bar"));
  // An empty tag does not count: the whole key is hashed.
  EXPECT_NE(KeySlot("foo{}{bar}"), KeySlot("bar"));
  // No closing brace: the whole key is hashed.
  EXPECT_NE(KeySlot("{unclosed"), KeySlot("unclosed"));
}

TEST(KeySlotTest, KeepsAGuestsArrayAndVersionRecordTogether) {
  for (const char* guest : {"1", "42", "user-7f3a", "a b c"}) {
    const std::string array = std::string("guest:") + guest;
    EXPECT_EQ(KeySlot(array), KeySlot("guest:{" + array + "}:version")) << guest;
  }
}

}  // namespace
}  // namespace stowage::redis
