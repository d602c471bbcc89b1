// A library that exports the stage functions but no version block: the
// loader must refuse it before calling anything in it.
#include "stowage/sdk.h"

extern "C" STOWAGE_EXPORT stowage::Stage* stowage_plugin_create(const stowage::StageConfig*, stowage::Logger*,
                                                                stowage::Status* error) noexcept {
  *error = stowage::Status::Internal("must never be called");
  return nullptr;
}
