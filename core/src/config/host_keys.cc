#include "config/host_keys.h"

#include <charconv>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "config/key_check.h"

namespace stowage::config {

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Whether a settings member of type M is stored from one ConfigValue; the
// others (a list of folders, a table) are read by the parser itself.
template <typename M>
constexpr bool kScalar = std::is_same_v<M, std::string> || std::is_same_v<M, bool> ||
                         std::is_same_v<M, std::optional<bool>> || std::is_same_v<M, Policy> ||
                         std::is_same_v<M, milliseconds> || std::is_same_v<M, seconds> || std::is_integral_v<M>;

// A checked value as the settings member holds it.
template <typename M>
M FromValue(const ConfigValue& value) {
  if constexpr (std::is_same_v<M, std::string>) {
    return std::get<std::string>(value);
  } else if constexpr (std::is_same_v<M, bool> || std::is_same_v<M, std::optional<bool>>) {
    return std::get<bool>(value);
  } else if constexpr (std::is_same_v<M, Policy>) {
    return std::get<std::string>(value) == "required" ? Policy::kRequired : Policy::kBestEffort;
  } else if constexpr (std::is_same_v<M, milliseconds> || std::is_same_v<M, seconds>) {
    // An integer key counts milliseconds (the *_ms keys); a duration key is one.
    if (const auto* ms = std::get_if<std::int64_t>(&value)) return std::chrono::duration_cast<M>(milliseconds(*ms));
    return std::chrono::duration_cast<M>(std::get<milliseconds>(value));
  } else {
    static_assert(std::is_integral_v<M>);
    return static_cast<M>(std::get<std::int64_t>(value));
  }
}

// The settings member as a ConfigValue of `type`, for the key's default;
// nullopt where it is none (an unset optional).
template <typename M>
std::optional<ConfigValue> ToValue(const M& member, ConfigType type) {
  if constexpr (std::is_same_v<M, std::string> || std::is_same_v<M, bool>) {
    return ConfigValue{member};
  } else if constexpr (std::is_same_v<M, Policy>) {
    return ConfigValue{std::string(PolicyName(member))};
  } else if constexpr (std::is_same_v<M, milliseconds> || std::is_same_v<M, seconds>) {
    const milliseconds ms = member;
    if (type == ConfigType::kInteger) return ConfigValue{static_cast<std::int64_t>(ms.count())};
    return ConfigValue{ms};
  } else if constexpr (std::is_integral_v<M>) {
    return ConfigValue{static_cast<std::int64_t>(member)};
  } else {  // an unset optional, a list, a table

    return std::nullopt;
  }
}

// Declares one key bound to a member of the settings; the modifiers add
// bounds, allowed values and rules, as ConfigSchema's do for a stage.
template <typename S>
class Declare {
 public:
  template <typename M>
  Declare(std::string name, M S::*member, ConfigType type) {
    key_.key.name = std::move(name);
    key_.key.type = type;
    key_.key.default_value = ToValue(S{}.*member, type);
    if constexpr (kScalar<M>) key_.set = [member](S& s, const ConfigValue& value) { s.*member = FromValue<M>(value); };
    key_.same = [member](const S& a, const S& b) { return a.*member == b.*member; };
  }

  Declare& range(std::int64_t min, std::int64_t max) {
    key_.key.min = ConfigValue{min};
    key_.key.max = ConfigValue{max};
    return *this;
  }
  Declare& range(milliseconds min, milliseconds max) {
    key_.key.min = ConfigValue{min};
    key_.key.max = ConfigValue{max};
    return *this;
  }
  Declare& one_of(std::vector<std::string> values) {
    key_.key.allowed = std::move(values);
    return *this;
  }
  // Required; `how` completes "add <key> = <how> to this ...".
  Declare& required(std::string how) {
    key_.required = true;
    key_.key.default_value.reset();
    key_.key.description = std::move(how);
    return *this;
  }
  Declare& restart() {
    key_.on_reload = OnReload::kRestart;
    return *this;
  }
  Declare& rule(std::function<std::string(const ConfigValue&)> rule) {
    key_.rule = std::move(rule);
    return *this;
  }
  // The parser reads the key itself (a name, an array, a table).
  Declare& read_by_parser() {
    key_.set = nullptr;
    return *this;
  }

  operator HostKey<S>() const { return key_; }

 private:
  HostKey<S> key_;
};

constexpr std::int64_t kIntMax = std::numeric_limits<int>::max();
constexpr std::int64_t kInt64Max = std::numeric_limits<std::int64_t>::max();
// Milliseconds that a steady clock time point can still be moved by.
constexpr std::int64_t kMsMax = kInt64Max / 1000000;

// "host:port" with a port from 0 to 65535.
std::function<std::string(const ConfigValue&)> HostAndPort(const std::string& example) {
  return [example](const ConfigValue& value) -> std::string {
    const std::string& listen = std::get<std::string>(value);
    const std::size_t colon = listen.rfind(':');
    if (colon != std::string::npos && colon != 0 && colon + 1 < listen.size() && listen[colon + 1] != '+' &&
        listen[colon + 1] != '-') {
      int port = -1;
      const char* end = listen.data() + listen.size();
      auto [ptr, ec] = std::from_chars(listen.data() + colon + 1, end, port);
      if (ec == std::errc() && ptr == end && port >= 0 && port <= 65535) return "";
    }
    return "expected \"host:port\" with a port from 0 to 65535 (e.g. \"" + example + "\"), got " + Quote(listen);
  };
}

// Not empty; `advice` says what to write instead.
std::function<std::string(const ConfigValue&)> NotEmpty(std::string advice) {
  return [advice](const ConfigValue& value) -> std::string {
    return std::get<std::string>(value).empty() ? advice : "";
  };
}

// A name of a [[database]] or [[stage]]: letters, digits, _ and -.
std::function<std::string(const ConfigValue&)> Name(const char* what) {
  return [what](const ConfigValue& value) -> std::string {
    const std::string& name = std::get<std::string>(value);
    bool ok = !name.empty();
    for (char c : name)
      ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-');
    return ok ? "" : std::string("invalid ") + what + " name " + Quote(name) + "; use letters, digits, _ and - only";
  };
}

}  // namespace

const std::vector<HostKey<ServerSettings>>& ServerKeys() {
  using S = ServerSettings;
  using T = ConfigType;
  // Every [server] key is read once, at start.
  static const std::vector<HostKey<S>> keys = {
      Declare<S>("listen", &S::listen, T::kString).restart().rule(HostAndPort("127.0.0.1:8000")),
      Declare<S>("io_threads", &S::io_threads, T::kInteger).range(1, kIntMax).restart(),
      Declare<S>("workers", &S::workers, T::kInteger).range(1, kIntMax).restart(),
      Declare<S>("body_limit", &S::body_limit, T::kInteger).range(1, kInt64Max).restart(),
      Declare<S>("max_content_bytes", &S::max_content_bytes, T::kInteger).range(1, kInt64Max).restart(),
      Declare<S>("max_connections", &S::max_connections, T::kInteger).range(1, kIntMax).restart(),
      Declare<S>("max_queue", &S::max_queue, T::kInteger).range(1, kIntMax).restart(),
      Declare<S>("queue_timeout_ms", &S::queue_timeout, T::kInteger).range(1, kMsMax).restart(),
      Declare<S>("max_history", &S::max_history, T::kInteger).range(1, kIntMax).restart(),
      // An array of folders, each resolved against the config file's folder.
      Declare<S>("plugin_path", &S::plugin_path, T::kPath).restart().read_by_parser(),
      Declare<S>("admin_token_env", &S::admin_token_env, T::kString)
          .restart()
          .rule(NotEmpty("empty variable name; name the environment variable holding the admin token "
                         "(e.g. \"STOWAGE_ADMIN_TOKEN\") or remove the key")),
      Declare<S>("admin_listen", &S::admin_listen, T::kString).restart().rule(HostAndPort("127.0.0.1:8001")),
      Declare<S>("startup_timeout_ms", &S::startup_timeout, T::kInteger).range(0, kMsMax).restart(),
  };
  return keys;
}

const std::vector<HostKey<LogSettings>>& LogKeys() {
  using S = LogSettings;
  static const std::vector<HostKey<S>> keys = {
      Declare<S>("level", &S::level, ConfigType::kString).one_of({"trace", "debug", "info", "warn", "error"}),
  };
  return keys;
}

const std::vector<HostKey<DatabaseSettings>>& DatabaseKeys() {
  using S = DatabaseSettings;
  using T = ConfigType;
  static const std::vector<HostKey<S>> keys = {
      Declare<S>("name", &S::name, T::kString)
          .required("\"...\" (letters, digits, _ and -)")
          .rule(Name("database"))
          .read_by_parser(),
      Declare<S>("url", &S::url, T::kString)
          .required("\"postgresql://user@host:5432/db\"")
          .rule(NotEmpty("empty url; write postgresql://user[:password]@host[:port]/db (e.g. \"${DATABASE_URL}\")")),
      Declare<S>("pool_size", &S::pool_size, T::kInteger).range(1, kIntMax),
      Declare<S>("connect_timeout_ms", &S::connect_timeout, T::kInteger).range(1, kMsMax),
      Declare<S>("prepared_statements", &S::prepared_statements, T::kBoolean),
  };
  return keys;
}

const std::vector<HostKey<StageSettings>>& StageKeys() {
  using S = StageSettings;
  using T = ConfigType;
  constexpr milliseconds kHundredYears{std::int64_t{100} * 365 * 86400 * 1000};
  static const std::vector<HostKey<S>> keys = {
        Declare<S>("name", &S::name, T::kString)
            .required("\"...\" (letters, digits, _ and -)")
            .rule(Name("stage"))
            .read_by_parser(),
        Declare<S>("plugin", &S::plugin, T::kString)
            .required("\"<name>\" or the path of a .so")
            .rule(NotEmpty("empty plugin; give a plugin name (e.g. \"redis\") or the path of a .so")),
        Declare<S>("policy", &S::policy, T::kString).one_of({"required", "best_effort"}),
        Declare<S>("enabled", &S::enabled, T::kBoolean),
        Declare<S>("timeout_ms", &S::timeout, T::kInteger).range(1, kMsMax),
        Declare<S>("database", &S::database, T::kString)
            .rule(NotEmpty("empty database name; name a declared [[database]] or remove the key")),
        Declare<S>("config", &S::config, T::kString).read_by_parser(),  // a table of the plugin's keys
        Declare<S>("circuit_threshold", &S::circuit_threshold, T::kInteger).range(0, kIntMax),
        Declare<S>("circuit_cooldown_ms", &S::circuit_cooldown, T::kInteger).range(1, kMsMax),
        Declare<S>("journal", &S::journal, T::kBoolean),
        Declare<S>("replay_max_attempts", &S::replay_max_attempts, T::kInteger).range(1, 1000000),
        Declare<S>("replay_max_age", &S::replay_max_age, T::kDuration).range(milliseconds(1000), kHundredYears),
  };
  return keys;
}

bool SameSettings(const StageSettings& a, const StageSettings& b) {
  return ChangedKeys(StageKeys(), a, b, OnReload::kApplies).empty();
}

bool SameSettings(const DatabaseSettings& a, const DatabaseSettings& b) {
  return ChangedKeys(DatabaseKeys(), a, b, OnReload::kApplies).empty();
}

std::vector<std::string> KeysNeedingRestart(const ServerSettings& a, const ServerSettings& b) {
  return ChangedKeys(ServerKeys(), a, b, OnReload::kRestart);
}

}  // namespace stowage::config
