#include "archive_stage.h"

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <system_error>

#include "guest_file.h"
#include "json_line.h"

namespace archive {

stowage::ConfigSchema ArchiveStage::config_schema() {
  return stowage::ConfigSchema()
      .required("folder", stowage::ConfigType::kPath,
                "folder of the guests' .jsonl files (relative: to the config file's folder); created when missing")
      .optional("fsync", false, "flush each line to disk before the write returns");
}

ArchiveStage::ArchiveStage(const stowage::StageConfig& config, stowage::StageEnvironment& env)
    : folder_(config.string("folder")), fsync_(config.boolean("fsync")) {
  if (folder_.empty())
    throw std::runtime_error("folder is empty; give the folder for the guests' archive files");
  std::error_code error;
  std::filesystem::create_directories(folder_, error);
  if (error) throw std::runtime_error("cannot create the archive folder " + folder_ + ": " + error.message());
  env.log.info("archiving into " + folder_ + (fsync_ ? " (fsync on every write)" : ""));
}

std::string ArchiveStage::PathOf(const std::string& guest_id) const {
  std::string name;
  for (std::size_t i = 0; i < guest_id.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(guest_id[i]);
    if (std::isalnum(c) || c == '-' || c == '_' || (c == '.' && i > 0)) {
      name += static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      name += escaped;
    }
  }
  return (std::filesystem::path(folder_) / (name + ".jsonl")).string();
}

stowage::Status ArchiveStage::write(stowage::WriteContext& ctx) {
  if (ctx.deadline.expired())
    return stowage::Status::DeadlineExceeded("the deadline passed before the write");
  std::optional<GuestFile> file;
  stowage::Status status =
      GuestFile::Open(PathOf(ctx.guest_id), true, LockMode::kExclusive, ctx.deadline, file);
  if (!status.ok()) return status;
  const std::string line = ToJsonLine(ctx.message) + "\n";
  if (ctx.replay) {
    // A replay (SDK 1.3) of a message whose write landed after all (e.g.
    // past the host's deadline) appends nothing: the file has its line.
    std::string text;
    status = file->ReadAll(text);
    if (!status.ok()) return status;
    for (std::size_t start = 0; start < text.size();) {
      std::size_t end = text.find('\n', start);
      end = end == std::string::npos ? text.size() : end + 1;
      if (text.compare(start, end - start, line) == 0) {
        ctx.log.info("replay: the message of guest " + ctx.guest_id + " is archived already");
        return stowage::Status::Ok();
      }
      start = end;
    }
  }
  status = file->Append(line, fsync_);
  if (!status.ok()) return status;
  ctx.log.info(std::string(ctx.replay ? "replay: " : "") + "archived a " + ctx.message.role +
               " message of guest " + ctx.guest_id);
  return stowage::Status::Ok();
}

stowage::Status ArchiveStage::compensate(stowage::WriteContext& ctx) {
  std::optional<GuestFile> file;
  stowage::Status status =
      GuestFile::Open(PathOf(ctx.guest_id), false, LockMode::kExclusive, ctx.deadline, file);
  if (!status.ok() || !file) return status;  // no file: nothing was written
  std::string text;
  status = file->ReadAll(text);
  if (!status.ok()) return status;
  // Removes the last whole line equal to this write's line. Lines of other
  // writes stay; one of another request with the very same text is the same
  // line, so whichever copy goes, the file is as if this write never ran.
  const std::string line = ToJsonLine(ctx.message) + "\n";
  std::size_t at = std::string::npos;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    if (text.compare(start, end - start, line) == 0) at = start;
    start = end;
  }
  if (at == std::string::npos) return stowage::Status::Ok();  // the write did not land
  text.erase(at, line.size());
  status = file->Replace(text, fsync_);
  if (!status.ok()) return status;
  ctx.log.info("removed the archived message of guest " + ctx.guest_id);
  return stowage::Status::Ok();
}

stowage::ReadResult ArchiveStage::read(stowage::GuestContext& ctx) {
  if (ctx.deadline.expired())
    return {stowage::Status::DeadlineExceeded("the deadline passed before the read"), false, {}};
  const std::string path = PathOf(ctx.guest_id);
  std::optional<GuestFile> file;
  stowage::Status status = GuestFile::Open(path, false, LockMode::kShared, ctx.deadline, file);
  if (!status.ok() || !file) return {status, false, {}};
  std::string text;
  status = file->ReadAll(text);
  if (!status.ok()) return {status, false, {}};
  stowage::ReadResult result;
  std::size_t number = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++number;
    std::string_view line(text.data() + start, end - start);
    start = end + 1;
    if (line.empty()) continue;
    std::optional<stowage::Message> message = FromJsonLine(line);
    if (!message) {
      return {stowage::Status::Internal("line " + std::to_string(number) + " of " + path +
                                        " is not an archived message; fix or remove it"),
              false,
              {}};
    }
    result.messages.push_back(std::move(*message));
  }
  result.found = !result.messages.empty();
  return result;
}

stowage::EraseResult ArchiveStage::erase(stowage::GuestContext& ctx) {
  if (ctx.deadline.expired())
    return {stowage::Status::DeadlineExceeded("the deadline passed before the erase")};
  std::optional<GuestFile> file;
  stowage::Status status =
      GuestFile::Open(PathOf(ctx.guest_id), false, LockMode::kExclusive, ctx.deadline, file);
  if (!status.ok() || !file) return {status, false};
  status = file->Unlink();
  if (!status.ok()) return {status, false};
  ctx.log.info("erased the archive of guest " + ctx.guest_id);
  return {stowage::Status::Ok(), true};
}

stowage::Status ArchiveStage::health(stowage::Deadline deadline) {
  (void)deadline;
  if (::access(folder_.c_str(), W_OK | X_OK) != 0) {
    return stowage::Status::Unavailable("the archive folder " + folder_ + " is not writable");
  }
  return stowage::Status::Ok();
}

}  // namespace archive
