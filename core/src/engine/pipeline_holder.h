// PipelineHolder: the pipeline in force, and live reload.
//
// Every request takes the current pipeline once, at its start (current()),
// and finishes on it. Reload() loads, validates and builds a new generation
// from a pipeline.toml, reusing the running stages whose settings did not
// change, then swaps it in atomically; on any error nothing changes and the
// running pipeline keeps serving. Thread-safe; one reload runs at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/pipeline_config.h"
#include "engine/pipeline.h"

namespace stowage::engine {

// A running stage whose plugin file has new content since it was loaded: the
// reload made the stage again from the new code (it is listed among
// `reconfigured` as well).
struct PluginChange {
  std::string stage;
  std::filesystem::path plugin;  // the file
  std::string sha256_before, sha256;
};

// What a reload did, or why it was refused.
struct ReloadReport {
  bool ok = false;
  std::uint64_t generation = 0;  // in force after the reload (unchanged when refused)
  // Stage names, by what happened to them.
  std::vector<std::string> added, removed, enabled, disabled, reconfigured, kept;
  // Running stages whose plugin file has new content; they run the new code.
  std::vector<PluginChange> plugin_changed;
  // [server] keys that differ from the running ones: not applied until a restart.
  std::vector<std::string> needs_restart;
  std::vector<std::string> errors;  // why it was refused; each names the file and what to fix
  std::vector<std::string> warnings;
  std::chrono::milliseconds took{0};

  // One line for the log: "reload: generation 3 (added: a; disabled: b; kept: c, d;
  // new plugin code: a (a.so 1a2b3c4d5e6f -> 0f9e8d7c6b5a))".
  std::string Summary() const;
};

class PipelineHolder {
 public:
  // `initial` is generation 1.
  explicit PipelineHolder(std::shared_ptr<Pipeline> initial);

  // The pipeline in force; the caller's copy stays valid after a reload.
  std::shared_ptr<Pipeline> current() const noexcept { return current_.load(); }
  std::uint64_t generation() const noexcept { return generation_.load(); }

  // Reloads from `file`. [server] changes are reported in needs_restart and
  // the running [server] settings are kept; [log] level is applied.
  ReloadReport Reload(const std::filesystem::path& file,
                      const config::Environment& env = config::ProcessEnvironment());

 private:
  std::mutex reload_mu_;
  std::atomic<std::shared_ptr<Pipeline>> current_;
  std::atomic<std::uint64_t> generation_{1};
};


}  // namespace stowage::engine
