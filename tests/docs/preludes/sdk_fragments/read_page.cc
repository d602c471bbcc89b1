// Put before docs/sdk.md's snippet of a read that honours the page: the
// class it belongs to, with the helpers it calls.
#include <cstdint>
#include <string>
#include <vector>

#include "stowage/sdk.h"

class MyStage final : public stowage::Stage {
 public:
  std::string target() const override;
  stowage::Status write(stowage::WriteContext&) override;
  stowage::Status compensate(stowage::WriteContext&) override;
  stowage::ReadResult read(stowage::GuestContext& ctx) override;
  stowage::EraseResult erase(stowage::GuestContext&) override;

 private:
  std::vector<stowage::Message> ReadPage(const std::string& guest_id, const stowage::ReadRange& range);
  std::vector<stowage::Message> ReadAll(const std::string& guest_id);
  std::uint64_t CountMessages(const std::string& guest_id);
};

