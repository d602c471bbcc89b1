#include "postgres_truth.h"

#include <gtest/gtest-spi.h>

#include <stdexcept>

#include "stores.h"

namespace stowage::faults {

namespace {

constexpr const char* kConversationRows =
    "SELECT m.conversation_id, m.id, m.sequence, m.content FROM message_cache m "
    "JOIN conversation_cache c ON c.id = m.conversation_id "
    "WHERE c.platform = 'guest' AND c.user_id = $1 ORDER BY m.sequence, m.id";

}  // namespace

std::map<std::string, std::vector<StoredMessage>> ReadStoredMessages(const std::string& database_url,
                                                                     const std::vector<std::string>& guests) {
  // PostgresProbe reports errors as test failures; outside a test they are
  // caught here and turned into an exception.
  ::testing::TestPartResultArray failures;
  std::map<std::string, std::vector<StoredMessage>> stored;
  {
    ::testing::ScopedFakeTestPartResultReporter catcher(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    testing::PostgresProbe probe(database_url);
    for (const auto& guest : guests) {
      auto& rows = stored[guest];
      for (const auto& row : probe.Query(kConversationRows, guest)) {
        if (row.size() != 4) break;
        rows.push_back({std::stoll(row[0]), std::stoll(row[1]), std::stoll(row[2]), row[3]});
      }
      if (failures.size() > 0) break;
    }
  }
  if (failures.size() > 0) {
    throw std::runtime_error("reading the messages from PostgreSQL (" + database_url +
                             ") failed: " + failures.GetTestPartResult(0).message() +
                             "; is the server up? see its postgres.log");
  }
  return stored;
}

}  // namespace stowage::faults
