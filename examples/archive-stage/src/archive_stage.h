// The archive stage: every message a guest sends, one JSON line each, in
// `<folder>/<guest id>.jsonl`.
//
// Config keys:
//   folder  (string, required)  where the guests' files are kept; created
//                                when missing
//   fsync   (boolean, false)    flush each line to disk before the write
//                                returns
//
// write appends the message's line; compensate removes the last line equal
// to it; read returns the file's lines as messages, oldest first; erase
// deletes the file. Its target in the API's answers is "archive".
#pragma once

#include <string>

#include "stowage/sdk.h"

namespace archive {

class ArchiveStage final : public stowage::Stage {
 public:
  static stowage::ConfigSchema config_schema();

  // Throws std::runtime_error when the folder cannot be created.
  ArchiveStage(const stowage::StageConfig& config, stowage::StageEnvironment& env);

  std::string target() const override { return "archive"; }
  stowage::Status write(stowage::WriteContext& ctx) override;
  stowage::Status compensate(stowage::WriteContext& ctx) override;
  stowage::ReadResult read(stowage::GuestContext& ctx) override;
  stowage::EraseResult erase(stowage::GuestContext& ctx) override;
  stowage::Status health(stowage::Deadline deadline) override;

  // The file that holds `guest_id`'s messages. Characters other than
  // letters, digits, '-', '_' and a '.' that does not lead are written as
  // %XX, so that every guest id names one file inside the folder.
  std::string PathOf(const std::string& guest_id) const;

 private:
  std::string folder_;
  bool fsync_ = false;
};

}  // namespace archive
