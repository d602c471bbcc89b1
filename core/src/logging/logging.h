// Host logging: spdlog set up once for the process, and the Logger handed to
// each stage, which prefixes every line with the stage's label ("[Redis] ").
#pragma once

#include <memory>
#include <string>

#include "stowage/logger.h"

namespace stowage::logging {

// Sends the process log (spdlog's default logger) to standard output
// through stdio's buffer: a line reaches the stream when spdlog flushes
// (flush_on, flush_every, an explicit flush, or the process exiting), not
// with a write of its own (the buffer holds 64 KiB when stdout is a file or
// a pipe). On a terminal stdout is line-buffered, so each line shows at
// once. Call once, before anything is logged.
void LogToStdout();

// Sets the process log level ("trace", "debug", "info", "warn", "error").
// Returns false, leaving the level unchanged, for an unknown name.
bool SetLevel(const std::string& level);

// A Logger for a stage; every line starts with "[label] ".
std::shared_ptr<stowage::Logger> MakeStageLogger(const std::string& label);

}  // namespace stowage::logging
