// Loading stage plugins: find the library, check its version block before
// anything else is called, and create stages that cannot outlive it.
//
// A library is never loaded from the file the config names but from a
// private copy of it named by its content's SHA-256 (in PluginCacheFolder()),
// so that a file rebuilt in place (rewritten, or renamed over) is loaded anew
// as an image of its own, while an unchanged file reuses the loaded image,
// and so that rewriting the file never changes code that is running.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stowage/plugin.h"

namespace boost::dll {
class shared_library;
}

namespace stowage::loader {

// A loaded and checked plugin library. Shared by every stage made from it;
// the library is unloaded, and its private copy removed, when the last Plugin
// and the last stage it made are gone.
class Plugin {
 public:
  // The file the config names (canonical).
  const std::filesystem::path& path() const noexcept { return path_; }
  // The SHA-256 of that file's content when it was loaded: 64 lower-case hex digits.
  const std::string& sha256() const noexcept { return sha256_; }
  // The private copy the library was loaded from.
  const std::filesystem::path& loaded_from() const noexcept { return loaded_from_; }
  const StowagePluginInfo& info() const noexcept { return *info_; }
  const stowage::ConfigSchema& schema() const noexcept { return *schema_; }
  // Whether the stage class promises to return from every call by its
  // context's deadline (kKeepsDeadlines; SDK 1.1). False for older plugins.
  bool keeps_deadlines() const noexcept { return (trait_flags_ & STOWAGE_TRAIT_KEEPS_DEADLINES) != 0; }
  // Whether the stage class keeps a copy of what the databases hold and is
  // written after their COMMIT (kAfterCommit; SDK 1.2). False for older plugins.
  bool after_commit() const noexcept { return (trait_flags_ & STOWAGE_TRAIT_AFTER_COMMIT) != 0; }

  // Creates a stage. The returned pointer keeps the library loaded. `env`
  // and what it refers to must outlive the stage. Returns nullptr and sets
  // `error` on failure.
  std::shared_ptr<stowage::Stage> Create(const stowage::StageConfig& config, stowage::StageEnvironment& env,
                                         stowage::Status* error) const;

 private:
  friend class PluginLoader;
  std::filesystem::path path_;
  std::string sha256_;
  std::filesystem::path loaded_from_;
  std::shared_ptr<boost::dll::shared_library> library_;
  const StowagePluginInfo* info_ = nullptr;
  const stowage::ConfigSchema* schema_ = nullptr;
  StowagePluginCreateFn* create_ = nullptr;
  StowagePluginDestroyFn* destroy_ = nullptr;
  std::uint32_t trait_flags_ = 0;
};

struct LoadPluginResult {
  std::shared_ptr<const Plugin> plugin;  // null on failure
  std::string error;                     // names the file, what it was built for, what the host offers
  std::vector<std::string> warnings;     // e.g. a Boost version that differs
};

class PluginLoader {
 public:
  // `search_path`: folders tried in order for a plugin given by bare name.
  explicit PluginLoader(std::vector<std::filesystem::path> search_path);

  // The folder of bundled plugins: <folder of this executable>/../lib/stowage/plugins.
  static std::filesystem::path DefaultPluginFolder();

  // `spec` is a bare name ("redis" -> "<folder>/redis.so") or a path
  // (relative paths resolve against `base_folder`, the config file's folder).
  // The file is read and hashed (once per loader): a library already loaded
  // from the same file with the same content is shared (no new copy); a file
  // whose content changed is copied and loaded as a new image. One loader
  // answers the same Plugin for one file however often it is asked, so that
  // the stages of one pipeline run one build of it even if the file changes
  // meanwhile.
  LoadPluginResult Load(const std::string& spec, const std::filesystem::path& base_folder);

  // Where Load would look for `spec`, in order.
  std::vector<std::filesystem::path> Candidates(const std::string& spec,
                                                const std::filesystem::path& base_folder) const;

 private:
  std::vector<std::filesystem::path> search_path_;
  std::map<std::filesystem::path, LoadPluginResult> loaded_;  // what Load answered, by canonical path
};

// The folder of this process's private plugin copies, made (mode 0700) on the
// first load: "stowage-plugin-cache-<pid>-XXXXXX" in $STOWAGE_PLUGIN_CACHE_DIR,
// else $XDG_RUNTIME_DIR, else the temporary folder ($TMPDIR, /tmp). Removed at
// exit; folders left by processes that no longer run are removed when it is
// made. Empty before the first load.
std::filesystem::path PluginCacheFolder();

// The host's own version block values, for messages and for `stowage validate`.
std::string HostDescription();

}  // namespace stowage::loader
