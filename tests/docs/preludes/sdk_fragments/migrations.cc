// Put before docs/sdk.md's migrations snippet: the class its constructor and
// admit() belong to.
#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "stowage/sdk.h"

class MyStage final : public stowage::Stage {
 public:
  MyStage(const stowage::StageConfig& config, stowage::StageEnvironment& env);
  std::string target() const override;
  stowage::Status admit(stowage::WriteContext& ctx) override;
  stowage::Status write(stowage::WriteContext&) override;
  stowage::Status compensate(stowage::WriteContext&) override;
  stowage::EraseResult erase(stowage::GuestContext&) override;

 private:
  stowage::SchemaGate schema_;
};

