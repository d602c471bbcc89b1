#include "loader/plugin_loader.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <utility>
#include <vector>

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

constexpr const char* kCacheFolderPrefix = "stowage-plugin-cache-";

// Guards everything below. Recursive: a library's deleter takes it, and may
// run while Load holds it (a library refused by its checks). Never destroyed,
// like the maps: a deleter may run during the static destruction at exit.
std::recursive_mutex& Mutex() {
  static auto* mu = new std::recursive_mutex();
  return *mu;
}
// Plugins loaded by any loader of this process, by canonical path and content,
// so that a plugin used by several stages or generations is loaded once.
std::map<std::pair<fs::path, std::string>, std::weak_ptr<const Plugin>>& Loaded() {
  static auto* loaded = new std::map<std::pair<fs::path, std::string>, std::weak_ptr<const Plugin>>();
  return *loaded;
}
// Loaded images by the SHA-256 of their content (two files with the same
// content share one).
std::map<std::string, std::weak_ptr<boost::dll::shared_library>>& Images() {
  static auto* images = new std::map<std::string, std::weak_ptr<boost::dll::shared_library>>();
  return *images;
}
fs::path& CacheFolder() {
  static auto* folder = new fs::path();
  return *folder;
}

std::string Errno(int error) {
  return std::strerror(error);
}

// SHA-256, fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up
// in its provider store on every digest (as plugins/postgres/message_hash.cc).
const EVP_MD* Sha256() {
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return sha256;
}

struct Hashed {
  std::string sha256;       // 64 hex digits; empty on failure
  std::string read_error;   // why reading the file failed
  std::string write_error;  // why writing the copy failed
};

// Reads `fd` to its end and hashes what it read; with `copy` >= 0, writes
// every byte there too.
Hashed HashFile(int fd, int copy) {
  Hashed out;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || Sha256() == nullptr || EVP_DigestInit_ex(ctx.get(), Sha256(), nullptr) != 1) {
    out.read_error = "OpenSSL could not compute a SHA-256";
    return out;
  }
  std::vector<char> buffer(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.read_error = Errno(errno);
      return out;
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(n)) != 1) {
      out.read_error = "OpenSSL could not compute a SHA-256";
      return out;
    }
    for (ssize_t done = 0; copy >= 0 && done < n;) {
      ssize_t w = ::write(copy, buffer.data() + done, static_cast<std::size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        out.write_error = Errno(errno);
        return out;
      }
      done += w;
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1) {
    out.read_error = "OpenSSL could not compute a SHA-256";
    return out;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  out.sha256.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.sha256 += kHex[digest[i] >> 4];
    out.sha256 += kHex[digest[i] & 0xf];
  }
  return out;
}

// Where the cache folder is made: $STOWAGE_PLUGIN_CACHE_DIR, else
// $XDG_RUNTIME_DIR, else the temporary folder.
fs::path CacheRoot() {
  for (const char* name : {"STOWAGE_PLUGIN_CACHE_DIR", "XDG_RUNTIME_DIR"}) {
    const char* value = std::getenv(name);
    if (value != nullptr && *value != '\0') return value;
  }
  std::error_code ec;
  fs::path temp = fs::temp_directory_path(ec);
  return ec ? fs::path("/tmp") : temp;
}

// Removes the cache folders in `root` of processes of this user that no
// longer run (killed before they could remove their own).
void RemoveStaleCacheFolders(const fs::path& root) {
  std::error_code ec;
  for (fs::directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!name.starts_with(kCacheFolderPrefix)) continue;
    const pid_t pid = static_cast<pid_t>(std::atol(name.c_str() + std::strlen(kCacheFolderPrefix)));
    struct stat st;
    if (pid <= 0 || pid == getpid() || ::lstat(it->path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode) ||
        st.st_uid != geteuid())
      continue;
    if (::kill(pid, 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove_all(it->path(), ignored);
    }
  }
}

// Without the lock: a thread still loading must not hold up the exit, and
// the folder's path, set once before this is registered, does not change.
void RemoveCacheFolderAtExit() {
  std::error_code ignored;
  if (!CacheFolder().empty()) fs::remove_all(CacheFolder(), ignored);
}

// The cache folder, made on first use; empty and `error` set when it cannot be.
fs::path EnsureCacheFolder(std::string* error) {
  fs::path& folder = CacheFolder();
  if (!folder.empty()) return folder;
  const fs::path root = CacheRoot();
  std::error_code ec;
  fs::create_directories(root, ec);
  RemoveStaleCacheFolders(root);
  std::string pattern = (root / (kCacheFolderPrefix + std::to_string(getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(pattern.data()) == nullptr) {  // mode 0700
    *error =
        "the plugin cache folder could not be made in " + root.string() + ": " + Errno(errno) +
        "; make room there, or start stowaged with STOWAGE_PLUGIN_CACHE_DIR naming a folder it can write";
    return {};
  }
  folder = pattern;
  static const bool registered = std::atexit(RemoveCacheFolderAtExit) == 0;
  (void)registered;
  return folder;
}

// Unloads a library, then removes its private copy unless it was loaded
// again meanwhile (a new image of the same content under the same name).
struct ImageDeleter {
  std::string sha256;
  fs::path copy;
  void operator()(boost::dll::shared_library* library) const noexcept {
    delete library;
    std::lock_guard lock(Mutex());
    auto it = Images().find(sha256);
    if (it != Images().end() && !it->second.expired()) return;
    if (it != Images().end()) Images().erase(it);
    std::error_code ignored;
    fs::remove(copy, ignored);
  }
};

// Copies `path` into the cache folder as "<sha256>.so", read-only, checking
// that the content is still the one hashed. Returns the copy, or empty and
// sets `error` (naming the file, the folder and what to do).
fs::path CopyToCache(const fs::path& path, const std::string& sha256, std::string* error) {
  const fs::path folder = EnsureCacheFolder(error);
  if (folder.empty()) return {};
  const fs::path copy = folder / (sha256 + ".so");
  std::string temp = (folder / ("." + sha256 + ".XXXXXX")).string();
  int source = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (source < 0) {
    *error = "plugin " + path.string() + " could not be read: " + Errno(errno) +
             "; check that stowaged's user may read it";
    return {};
  }
  int target = ::mkostemp(temp.data(), O_CLOEXEC);  // mode 0600
  if (target < 0) {
    *error = "plugin " + path.string() + " could not be copied into the plugin cache folder " +
             folder.string() + ": " + Errno(errno) +
             "; make room there and reload again, or start stowaged with " +
             "STOWAGE_PLUGIN_CACHE_DIR naming a folder with room";
    ::close(source);
    return {};
  }
  Hashed copied = HashFile(source, target);
  ::close(source);
  if (copied.write_error.empty() && ::fchmod(target, 0400) != 0) copied.write_error = Errno(errno);
  if (::close(target) != 0 && copied.write_error.empty()) copied.write_error = Errno(errno);
  if (copied.write_error.empty() && copied.read_error.empty() && copied.sha256 == sha256 &&
      ::rename(temp.c_str(), copy.c_str()) != 0)
    copied.write_error = Errno(errno);
  if (copied.write_error.empty() && copied.read_error.empty() && copied.sha256 == sha256) return copy;
  ::unlink(temp.c_str());
  if (!copied.write_error.empty()) {
    *error = "plugin " + path.string() + " could not be copied into the plugin cache folder " +
             folder.string() + ": " + copied.write_error +
             "; make room there and reload again, or start stowaged with " +
             "STOWAGE_PLUGIN_CACHE_DIR naming a folder with room";
  } else if (!copied.read_error.empty()) {
    *error = "plugin " + path.string() + " could not be read: " + copied.read_error +
             "; check that stowaged's user may read it";
  } else {
    *error = "plugin " + path.string() + " changed while it was being loaded (it is being written?); " +
             "reload again once it is complete";
  }
  return {};
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

  if (auto it = loaded_.find(path); it != loaded_.end()) return it->second;

  // The content decides which image runs: the file is hashed every time.
  Hashed hashed;
  if (int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
    hashed = HashFile(fd, -1);
    ::close(fd);
  } else {
    hashed.read_error = Errno(errno);
  }
  if (!hashed.read_error.empty()) {
    result.error = "plugin " + path.string() + " could not be read: " + hashed.read_error +
                   "; check that stowaged's user may read it";
    return result;
  }
  const std::string& sha256 = hashed.sha256;

  std::lock_guard lock(Mutex());
  for (auto it = Loaded().begin(); it != Loaded().end();)
    it = it->second.expired() ? Loaded().erase(it) : ++it;
  if (auto it = Loaded().find({path, sha256}); it != Loaded().end()) {
    if (auto plugin = it->second.lock()) {
      result.plugin = std::move(plugin);
      loaded_[path] = result;
      return result;
    }
  }

  // A new content gets a new image, loaded from a private copy named by its
  // hash: dlopen answers the image already loaded for a path (or inode) it
  // has seen, and rewriting a file that is mapped changes running code.
  std::shared_ptr<boost::dll::shared_library> library;
  if (auto it = Images().find(sha256); it != Images().end()) library = it->second.lock();
  fs::path copy;
  if (library) {
    copy = CacheFolder() / (sha256 + ".so");
  } else {
    copy = CopyToCache(path, sha256, &result.error);
    if (copy.empty()) return result;
    auto loading = std::make_unique<boost::dll::shared_library>();
    boost::dll::fs::error_code ec;
    loading->load(copy, ec, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    if (ec) {
      const std::string reason = DlopenReason(copy);
      result.error = "plugin " + path.string() + " could not be loaded: " + reason +
                     "; check that it is a stowage stage library built for this machine";
      if (reason.find("map segment") != std::string::npos ||
          reason.find("not permitted") != std::string::npos)
        result.error += " (the plugin cache folder " + copy.parent_path().string() +
                        " may be on a noexec mount: start stowaged with STOWAGE_PLUGIN_CACHE_DIR naming a " +
                        "folder that allows executables)";
      std::error_code ignored;
      fs::remove(copy, ignored);
      return result;
    }
    library = std::shared_ptr<boost::dll::shared_library>(loading.release(), ImageDeleter{sha256, copy});
    Images()[sha256] = library;
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
  plugin->sha256_ = sha256;
  plugin->loaded_from_ = copy;
  plugin->library_ = library;
  plugin->info_ = &info;
  plugin->create_ = &library->get<StowagePluginCreateFn>(kCreateSymbol);
  plugin->destroy_ = &library->get<StowagePluginDestroyFn>(kDestroySymbol);
  if (library->has(kTraitsSymbol)) {
    const auto& traits = library->get<const StowagePluginTraits>(kTraitsSymbol);
    if (traits.size >= sizeof(std::uint32_t) * 2) plugin->trait_flags_ = traits.flags;
  }
  plugin->schema_ = library->get<StowagePluginSchemaFn>(kSchemaSymbol)();
  if (plugin->schema_ == nullptr) {
    result.error = "plugin " + path.string() + " failed to describe its configuration (its config_schema() threw)";
    return result;
  }
  Loaded()[{path, sha256}] = plugin;
  result.plugin = std::move(plugin);
  loaded_[path] = result;
  return result;
}

fs::path PluginCacheFolder() {
  std::lock_guard lock(Mutex());
  return CacheFolder();
}

std::string HostDescription() {
  return "SDK " + VersionOf(STOWAGE_SDK_VERSION_MAJOR, STOWAGE_SDK_VERSION_MINOR) + ", " + STOWAGE_COMPILER + ", " +
         STOWAGE_STDLIB_ABI + ", Boost " + BoostVersionOf(BOOST_VERSION);
}

}  // namespace stowage::loader
