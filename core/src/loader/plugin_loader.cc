#include "loader/plugin_loader.h"

#include <dlfcn.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>

namespace stowage::loader {
namespace {

namespace fs = std::filesystem;

constexpr const char* kInfoSymbol = "stowage_plugin_info";
constexpr const char* kSchemaSymbol = "stowage_plugin_schema";
constexpr const char* kTraitsSymbol = "stowage_plugin_traits";  // SDK 1.1; optional
constexpr const char* kCreateSymbol = "stowage_plugin_create";
constexpr const char* kDestroySymbol = "stowage_plugin_destroy";

// A fixed-size char field of the version block as a string, never reading
// past the field even if the plugin left it unterminated.
std::string Field(const char* field, std::size_t size) { return std::string(field, strnlen(field, size)); }
template <std::size_t N>
std::string Field(const char (&field)[N]) {
  return Field(field, N);
}

std::string VersionOf(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

std::string BoostVersionOf(std::uint32_t v) {
  if (v == 0) return "none";
  return std::to_string(v / 100000) + "." + std::to_string(v / 100 % 1000) + "." + std::to_string(v % 100);
}

// What the plugin says it was built with, for error messages.
std::string Describe(const StowagePluginInfo& info) {
  std::ostringstream out;
  out << "SDK " << VersionOf(info.sdk_major, info.sdk_minor) << ", " << Field(info.compiler) << ", "
      << Field(info.stdlib_abi) << ", Boost " << BoostVersionOf(info.boost_version);
  return out.str();
}

// dlopen's own words for why a library does not load (missing file, missing
// dependency, undefined symbol): Boost.DLL's error code does not carry them.
std::string DlopenReason(const fs::path& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle != nullptr) {
    dlclose(handle);
    return "unknown reason";
  }
  const char* reason = dlerror();
  return reason != nullptr ? reason : "unknown reason";
}

bool LooksLikePath(const std::string& spec) {
  return spec.find('/') != std::string::npos || (spec.size() > 3 && spec.ends_with(".so"));
}

// Libraries loaded by any loader of this process, by canonical path, so that a
// plugin used by several stages or pipelines is loaded once.
std::mutex g_loaded_mu;
std::map<fs::path, std::weak_ptr<const Plugin>>& Loaded() {
  static auto* loaded = new std::map<fs::path, std::weak_ptr<const Plugin>>();
  return *loaded;
}

}  // namespace

std::shared_ptr<stowage::Stage> Plugin::Create(const stowage::StageConfig& config, stowage::StageEnvironment& env,
                                               stowage::Status* error) const {
  stowage::Status status;
  stowage::Stage* raw = create_(&config, &env, &status);
  if (raw == nullptr) {
    *error = status.ok() ? stowage::Status::Internal("the plugin returned no stage and no reason") : status;
    return nullptr;
  }
  // The deleter holds the library, so the stage cannot outlive its code.
  auto library = library_;
  auto destroy = destroy_;
  return std::shared_ptr<stowage::Stage>(raw, [library, destroy](stowage::Stage* stage) { destroy(stage); });
}

PluginLoader::PluginLoader(std::vector<fs::path> search_path) : search_path_(std::move(search_path)) {}

fs::path PluginLoader::DefaultPluginFolder() {
  boost::dll::fs::error_code ec;
  fs::path program = boost::dll::program_location(ec);
  if (ec) return fs::path("lib/stowage/plugins");
  return (program.parent_path() / ".." / "lib" / "stowage" / "plugins").lexically_normal();
}

std::vector<fs::path> PluginLoader::Candidates(const std::string& spec, const fs::path& base_folder) const {
  if (LooksLikePath(spec)) {
    fs::path path(spec);
    return {path.is_absolute() ? path : (base_folder / path).lexically_normal()};
  }
  std::vector<fs::path> candidates;
  for (const auto& folder : search_path_) candidates.push_back(folder / (spec + ".so"));
  candidates.push_back(DefaultPluginFolder() / (spec + ".so"));
  return candidates;
}

LoadPluginResult PluginLoader::Load(const std::string& spec, const fs::path& base_folder) {
  LoadPluginResult result;
  const auto candidates = Candidates(spec, base_folder);
  fs::path path;
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) {
      path = fs::canonical(candidate, ec);
      if (ec) path = candidate;
      break;
    }
  }
  if (path.empty()) {
    std::ostringstream out;
    out << "plugin '" << spec << "' not found; looked for";
    for (const auto& candidate : candidates) out << " " << candidate.string();
    out << "; build it, or set `plugin` to the path of its .so file";
    result.error = out.str();
    return result;
  }

  std::lock_guard lock(g_loaded_mu);
  if (auto it = Loaded().find(path); it != Loaded().end()) {
    if (auto plugin = it->second.lock()) {
      result.plugin = std::move(plugin);
      return result;
    }
  }

  auto library = std::make_shared<boost::dll::shared_library>();
  boost::dll::fs::error_code ec;
  library->load(path, ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  if (ec) {
    result.error = "plugin " + path.string() + " could not be loaded: " + DlopenReason(path) +
                   "; check that it is a stowage stage library built for this machine";
    return result;
  }

  // The version block is read before anything else in the library is called.
  if (!library->has(kInfoSymbol)) {
    result.error = "plugin " + path.string() + " has no version block (symbol '" + kInfoSymbol +
                   "'): it is not a stowage stage, or was built without STOWAGE_STAGE; rebuild it against the "
                   "stowage SDK (host offers " + HostDescription() + ")";
    return result;
  }
  const auto& info = library->get<const StowagePluginInfo>(kInfoSymbol);
  const std::string host = HostDescription();
  if (info.magic != STOWAGE_PLUGIN_MAGIC) {
    result.error = "plugin " + path.string() + " has a corrupt version block (bad magic); rebuild it against the " +
                   "stowage SDK (host offers " + host + ")";
    return result;
  }
  if (info.sdk_major != STOWAGE_SDK_VERSION_MAJOR || info.sdk_minor > STOWAGE_SDK_VERSION_MINOR) {
    result.error = "plugin " + path.string() + " was built for " + Describe(info) + ", but this host offers " +
                   host + "; rebuild the plugin against SDK " +
                   VersionOf(STOWAGE_SDK_VERSION_MAJOR, STOWAGE_SDK_VERSION_MINOR);
    return result;
  }
  if (Field(info.stdlib_abi) != STOWAGE_STDLIB_ABI) {
    result.error = "plugin " + path.string() + " was built for " + Describe(info) + ", but this host offers " + host +
                   "; the C++ standard library ABI must match: rebuild the plugin with the host's toolchain";
    return result;
  }
  if (info.boost_version != 0 && info.boost_version / 100 != BOOST_VERSION / 100) {
    result.warnings.push_back("plugin " + path.string() + " was built with Boost " +
                              BoostVersionOf(info.boost_version) + ", the host with Boost " +
                              BoostVersionOf(BOOST_VERSION) +
                              "; no Boost type crosses the SDK, but rebuild it if it misbehaves");
  }
  for (const char* symbol : {kSchemaSymbol, kCreateSymbol, kDestroySymbol}) {
    if (!library->has(symbol)) {
      result.error = "plugin " + path.string() + " lacks the symbol '" + symbol +
                     "'; export the stage with STOWAGE_STAGE(...) from stowage/plugin.h";
      return result;
    }
  }

  auto plugin = std::shared_ptr<Plugin>(new Plugin());
  plugin->path_ = path;
  plugin->library_ = library;
  plugin->info_ = &info;
  plugin->create_ = &library->get<StowagePluginCreateFn>(kCreateSymbol);
  plugin->destroy_ = &library->get<StowagePluginDestroyFn>(kDestroySymbol);
  if (library->has(kTraitsSymbol)) {
    const auto& traits = library->get<const StowagePluginTraits>(kTraitsSymbol);
    if (traits.size >= sizeof(std::uint32_t) * 2) plugin->trait_flags_ = traits.flags;
    // A stage's prepare() and abandon() exist in its virtual table from SDK
    // 1.2 on: an older plugin claiming to run after the commit is not believed.
    if (info.sdk_minor < 2) plugin->trait_flags_ &= ~STOWAGE_TRAIT_AFTER_COMMIT;
  }
  plugin->schema_ = library->get<StowagePluginSchemaFn>(kSchemaSymbol)();
  if (plugin->schema_ == nullptr) {
    result.error = "plugin " + path.string() + " failed to describe its configuration (its config_schema() threw)";
    return result;
  }
  Loaded()[path] = plugin;
  result.plugin = std::move(plugin);
  return result;
}

std::string HostDescription() {
  return "SDK " + VersionOf(STOWAGE_SDK_VERSION_MAJOR, STOWAGE_SDK_VERSION_MINOR) + ", " + STOWAGE_COMPILER + ", " +
         STOWAGE_STDLIB_ABI + ", Boost " + BoostVersionOf(BOOST_VERSION);
}

}  // namespace stowage::loader
