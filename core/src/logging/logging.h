// Host logging: spdlog set up once for the process, and the Logger handed to
// each stage, which prefixes every line with the stage's label ("[Redis] ").
#pragma once

#include <memory>
#include <string>

#include "stowage/logger.h"

namespace stowage::logging {

// Sets the process log level ("trace", "debug", "info", "warn", "error").
// Returns false, leaving the level unchanged, for an unknown name.
bool SetLevel(const std::string& level);

// A Logger for a stage; every line starts with "[label] ".
std::shared_ptr<stowage::Logger> MakeStageLogger(const std::string& label);

}  // namespace stowage::logging
