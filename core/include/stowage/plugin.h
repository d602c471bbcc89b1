// Exporting a stage from a plugin library.
//
// A plugin library holds one stage class and ends with
//
//   STOWAGE_STAGE(RedisStage, "redis", "Redis", "1.0.0")
//
// which exports:
// - `stowage_plugin_info`, the version block: a plain C struct the host reads
//   and checks before it calls anything else in the library;
// - `stowage_plugin_schema`, the stage's ConfigSchema;
// - `stowage_plugin_create` / `stowage_plugin_destroy`, which make and free
//   the stage inside the library, wrapped so that no exception leaves it;
// - `stowage_plugin_traits` (SDK 1.1), what the class promises the host
//   and how it wants to be called.
//
// The class needs:
//   static stowage::ConfigSchema config_schema();
//   StageClass(const stowage::StageConfig& config, stowage::StageEnvironment& env);
// A constructor that throws makes creation fail with the exception's text.
//
// It may also declare
//   static constexpr bool kKeepsDeadlines = true;
// a promise that every call returns by the deadline of its context (give or
// take a few milliseconds), e.g. because each socket wait is bounded by
// ctx.deadline.remaining(). The host then calls the stage on the request's
// own thread. Without it, a stage that has no [[database]] is called on a
// thread of the host's call runner, so that the host can stop waiting at the
// deadline whatever the stage does: a safe default that costs two thread
// switches per call.
//
// And (SDK 1.2)
//   static constexpr bool kAfterCommit = true;
// for a stage that keeps a copy of what the databases hold (a cache): it is
// written after the COMMIT, with prepare() before it (see stage.h).
#pragma once

#include <cxxabi.h>

#include <concepts>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <typeinfo>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "stowage/config.h"
#include "stowage/logger.h"
#include "stowage/stage.h"
#include "stowage/status.h"
#include "stowage/version.h"

#if __has_include(<boost/version.hpp>)
#include <boost/version.hpp>
#define STOWAGE_BOOST_VERSION BOOST_VERSION
#else
#define STOWAGE_BOOST_VERSION 0
#endif

#define STOWAGE_STRINGIFY_(x) #x
#define STOWAGE_STRINGIFY(x) STOWAGE_STRINGIFY_(x)

#if defined(__clang__)
#define STOWAGE_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define STOWAGE_COMPILER "gcc " __VERSION__
#else
#define STOWAGE_COMPILER "unknown"
#endif

// The standard library and its ABI: std::string and std::vector cross the
// plugin boundary, so host and plugin must agree on it exactly.
#if defined(_LIBCPP_VERSION)
#define STOWAGE_STDLIB_ABI "libc++ abi " STOWAGE_STRINGIFY(_LIBCPP_ABI_VERSION)
#elif defined(__GLIBCXX__)
#define STOWAGE_STDLIB_ABI "libstdc++ cxx11-abi " STOWAGE_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#else
#define STOWAGE_STDLIB_ABI "unknown"
#endif

#define STOWAGE_EXPORT __attribute__((visibility("default")))

extern "C" {

// Bits of StowagePluginTraits::flags.
#define STOWAGE_TRAIT_KEEPS_DEADLINES 0x1u
#define STOWAGE_TRAIT_AFTER_COMMIT 0x2u  // SDK 1.2

// What a stage class promises the host. A plugin built before SDK 1.1 has
// none: the host then assumes no promise. New fields are only ever added at
// the end; `size` tells the host which ones the plugin has.
struct StowagePluginTraits {
  std::uint32_t size;   // sizeof(StowagePluginTraits) when the plugin was built
  std::uint32_t flags;  // STOWAGE_TRAIT_* bits
};

// "STOW": the first field of every version block.
#define STOWAGE_PLUGIN_MAGIC 0x53544f57u

// The version block. Its layout never changes, so that a host of any version
// can read the block of a plugin of any version and explain a mismatch.
struct StowagePluginInfo {
  std::uint32_t magic;          // STOWAGE_PLUGIN_MAGIC
  std::uint32_t sdk_major;      // STOWAGE_SDK_VERSION_MAJOR it was built with
  std::uint32_t sdk_minor;      // STOWAGE_SDK_VERSION_MINOR it was built with
  std::uint32_t boost_version;  // BOOST_VERSION it was built with, 0 if none
  char compiler[64];            // e.g. "gcc 12.2.0"
  char stdlib_abi[64];          // e.g. "libstdc++ cxx11-abi 1"
  char name[64];                // the plugin's name, e.g. "redis"
  char label[32];               // its log prefix without brackets, e.g. "Redis"
  char version[32];             // the plugin's own version, e.g. "1.0.0"
};

}  // extern "C"

namespace stowage::internal {

// What the exception being handled is, for a message: its demangled type,
// then what() for a std::exception ("std::bad_optional_access: bad optional
// access"), or "an exception of type int". Call inside a catch block only.
inline std::string CurrentExceptionText() noexcept {
  try {
    std::string type = "an unknown type";
    if (const std::type_info* info = abi::__cxa_current_exception_type()) {
      int status = 0;
      std::unique_ptr<char, void (*)(void*)> demangled(abi::__cxa_demangle(info->name(), nullptr, nullptr, &status),
                                                       std::free);
      type = status == 0 && demangled ? demangled.get() : info->name();
    }
    try {
      throw;
    } catch (const std::exception& e) {
      return type + ": " + e.what();
    } catch (...) {
      return "an exception of type " + type;
    }
  } catch (...) {
    return "an exception (describing it failed)";
  }
}

// Turns an exception into a Status; used where stage code meets the boundary.
// The message is "<operation> threw <CurrentExceptionText()>".
inline Status StatusFromCurrentException(const char* operation) noexcept {
  return Status::Internal(std::string(operation) + " threw " + CurrentExceptionText());
}

// Wraps a stage so that every call returns a result and none throws. Lives in
// the plugin library, so exceptions are caught where they are thrown.
template <typename StageClass>
class GuardedStage final : public Stage {
 public:
  explicit GuardedStage(std::unique_ptr<StageClass> inner) : inner_(std::move(inner)) {}

  std::string target() const override {
    try {
      return inner_->target();
    } catch (...) {
      return {};
    }
  }
  Status admit(WriteContext& ctx) noexcept override {
    try {
      return inner_->admit(ctx);
    } catch (...) {
      return StatusFromCurrentException("admit");
    }
  }
  Status write(WriteContext& ctx) noexcept override {
    try {
      return inner_->write(ctx);
    } catch (...) {
      return StatusFromCurrentException("write");
    }
  }
  Status compensate(WriteContext& ctx) noexcept override {
    try {
      return inner_->compensate(ctx);
    } catch (...) {
      return StatusFromCurrentException("compensate");
    }
  }
  ReadResult read(GuestContext& ctx) noexcept override {
    try {
      return inner_->read(ctx);
    } catch (...) {
      return {StatusFromCurrentException("read"), false, {}};
    }
  }
  Status refill(GuestContext& ctx, const std::vector<Message>& messages) noexcept override {
    try {
      return inner_->refill(ctx, messages);
    } catch (...) {
      return StatusFromCurrentException("refill");
    }
  }
  EraseResult erase(GuestContext& ctx) noexcept override {
    try {
      return inner_->erase(ctx);
    } catch (...) {
      return {StatusFromCurrentException("erase"), false};
    }
  }
  SearchResult search(GuestContext& ctx, const std::string& query, std::size_t k) noexcept override {
    try {
      return inner_->search(ctx, query, k);
    } catch (...) {
      return {StatusFromCurrentException("search"), true, {}};
    }
  }
  void observe(const RequestReport& report) noexcept override {
    try {
      inner_->observe(report);
    } catch (...) {
      // Accounting never fails a request.
    }
  }
  Status health(Deadline deadline) noexcept override {
    try {
      return inner_->health(deadline);
    } catch (...) {
      return StatusFromCurrentException("health");
    }
  }
  Status prepare(WriteContext& ctx) noexcept override {
    try {
      return inner_->prepare(ctx);
    } catch (...) {
      return StatusFromCurrentException("prepare");
    }
  }
  Status abandon(WriteContext& ctx, Uncommitted why) noexcept override {
    try {
      return inner_->abandon(ctx, why);
    } catch (...) {
      return StatusFromCurrentException("abandon");
    }
  }
  Status prepare_erase(GuestContext& ctx) noexcept override {
    try {
      return inner_->prepare_erase(ctx);
    } catch (...) {
      return StatusFromCurrentException("prepare_erase");
    }
  }

 private:
  std::unique_ptr<StageClass> inner_;
};

// What STOWAGE_STAGE needs of its class, each checked by a static_assert
// with a plain message before anything is instantiated with the class.
template <typename StageClass>
constexpr bool kDerivesFromStage = std::is_base_of_v<Stage, StageClass> && !std::is_abstract_v<StageClass>;
template <typename StageClass>
constexpr bool kHasStageConstructor =
    std::is_constructible_v<StageClass, const StageConfig&, StageEnvironment&>;
template <typename StageClass>
constexpr bool kHasConfigSchema = requires {
  { StageClass::config_schema() } -> std::convertible_to<ConfigSchema>;
};
template <typename StageClass>
constexpr bool kIsStageClass =
    kDerivesFromStage<StageClass> && kHasStageConstructor<StageClass> && kHasConfigSchema<StageClass>;

template <typename StageClass>
Stage* CreateGuarded(const StageConfig& config, StageEnvironment& env, Status& error) noexcept {
  if constexpr (kIsStageClass<StageClass>) {
    try {
      return new GuardedStage<StageClass>(std::make_unique<StageClass>(config, env));
    } catch (...) {
      error = StatusFromCurrentException("the stage constructor");
      return nullptr;
    }
  } else {
    return nullptr;  // the static_asserts of STOWAGE_STAGE have failed the build
  }
}

// The class's schema, made once; null when config_schema() threw.
template <typename StageClass>
const ConfigSchema* SchemaOf() noexcept {
  if constexpr (kHasConfigSchema<StageClass>) {
    try {
      static const ConfigSchema schema = StageClass::config_schema();
      return &schema;
    } catch (...) {
      return nullptr;
    }
  } else {
    return nullptr;  // the static_asserts of STOWAGE_STAGE have failed the build
  }
}

// The STOWAGE_TRAIT_* bits that StageClass declares.
template <typename StageClass>
constexpr std::uint32_t TraitFlagsOf() noexcept {
  std::uint32_t flags = 0;
  if constexpr (requires { StageClass::kKeepsDeadlines; }) {
    if (StageClass::kKeepsDeadlines) flags |= STOWAGE_TRAIT_KEEPS_DEADLINES;
  }
  if constexpr (requires { StageClass::kAfterCommit; }) {
    if (StageClass::kAfterCommit) flags |= STOWAGE_TRAIT_AFTER_COMMIT;
  }
  return flags;
}

}  // namespace stowage::internal

// Signatures of the exported functions, for the host.
using StowagePluginSchemaFn = const stowage::ConfigSchema*() noexcept;
using StowagePluginCreateFn = stowage::Stage*(const stowage::StageConfig*, stowage::StageEnvironment*,
                                              stowage::Status*) noexcept;
using StowagePluginDestroyFn = void(stowage::Stage*) noexcept;

#define STOWAGE_STAGE(StageClass, plugin_name, plugin_label, plugin_version)                        \
  static_assert(stowage::internal::kDerivesFromStage<StageClass>,                                   \
                "STOWAGE_STAGE(" #StageClass ", ...): " #StageClass                                 \
                " must derive from stowage::Stage and override every pure virtual call "            \
                "(target, write, compensate, erase)");                                              \
  static_assert(stowage::internal::kHasStageConstructor<StageClass>,                                \
                "STOWAGE_STAGE(" #StageClass ", ...): " #StageClass " needs a public constructor "  \
                #StageClass "(const stowage::StageConfig& config, stowage::StageEnvironment& env)"); \
  static_assert(stowage::internal::kHasConfigSchema<StageClass>,                                    \
                "STOWAGE_STAGE(" #StageClass ", ...): " #StageClass                                 \
                " needs a public static stowage::ConfigSchema config_schema()");                    \
  extern "C" {                                                                                      \
  STOWAGE_EXPORT extern const StowagePluginInfo stowage_plugin_info;                                \
  const StowagePluginInfo stowage_plugin_info = {                                                   \
      STOWAGE_PLUGIN_MAGIC,  STOWAGE_SDK_VERSION_MAJOR, STOWAGE_SDK_VERSION_MINOR,                  \
      STOWAGE_BOOST_VERSION, STOWAGE_COMPILER,          STOWAGE_STDLIB_ABI,                         \
      plugin_name,           plugin_label,              plugin_version};                            \
  STOWAGE_EXPORT extern const StowagePluginTraits stowage_plugin_traits;                            \
  const StowagePluginTraits stowage_plugin_traits = {                                               \
      sizeof(StowagePluginTraits), stowage::internal::TraitFlagsOf<StageClass>()};                  \
  STOWAGE_EXPORT const stowage::ConfigSchema* stowage_plugin_schema() noexcept {                    \
    return stowage::internal::SchemaOf<StageClass>();                                               \
  }                                                                                                 \
  STOWAGE_EXPORT stowage::Stage* stowage_plugin_create(const stowage::StageConfig* config,          \
                                                       stowage::StageEnvironment* env,              \
                                                       stowage::Status* error) noexcept {           \
    return stowage::internal::CreateGuarded<StageClass>(*config, *env, *error);                     \
  }                                                                                                 \
  STOWAGE_EXPORT void stowage_plugin_destroy(stowage::Stage* stage) noexcept { delete stage; }      \
  }
