// Must not compile: a stage whose constructor takes a Logger instead of the
// StageEnvironment (the mistake an older docs/sdk.md led to). STOWAGE_STAGE
// must stop the build with one plain static_assert message, not a template
// error. Compiled only by the test stage_macro_wrong_constructor.
#include "stowage/sdk.h"

class WrongConstructor final : public stowage::Stage {
 public:
  static stowage::ConfigSchema config_schema() { return {}; }
  WrongConstructor(const stowage::StageConfig&, stowage::Logger&) {}

  std::string target() const override { return "nowhere"; }
  stowage::Status write(stowage::WriteContext&) override { return stowage::Status::Ok(); }
  stowage::Status compensate(stowage::WriteContext&) override { return stowage::Status::Ok(); }
  stowage::EraseResult erase(stowage::GuestContext&) override { return {}; }
};

STOWAGE_STAGE(WrongConstructor, "wrong_constructor", "WrongConstructor", "1.0.0")
