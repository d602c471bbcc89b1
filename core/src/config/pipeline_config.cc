// pipeline.toml: parsing, environment expansion and validation.
//
// Every check records a ConfigError and goes on, so one run reports every
// problem of the file; errors are returned in file order. Nothing here throws
// to the caller: toml++ parse errors, unreadable files and exceptions from an
// Environment all become ConfigErrors.
#include "config/pipeline_config.h"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <system_error>
#include <utility>

#include "config/host_keys.h"
#include "config/key_check.h"
#include "database/endpoint.h"

namespace stowage::config {

namespace {

// ---------------------------------------------------------------------------
// ${VAR} expansion

bool IsVariableStart(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool IsVariableChar(char c) {
  return IsVariableStart(c) || (c >= '0' && c <= '9');
}

constexpr const char* kExpansionHelp = "write ${NAME} or ${NAME:-default}, and $$ for a literal $";

// Expands ${VAR}, ${VAR:-default} and $$ in `text`. A `$` followed by
// anything else is kept as is. Returns nullopt and appends to `errors` (one
// message per unset variable, or one for a malformed reference).
std::optional<std::string> Expand(std::string_view text, const Environment& env,
                                  std::vector<std::string>* errors) {
  std::string out;
  bool failed = false;
  std::size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size() || (text[i + 1] != '$' && text[i + 1] != '{')) {
      out += c;
      ++i;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      i += 2;
      continue;
    }
    const std::size_t start = i;
    const std::size_t close = text.find('}', i + 2);
    if (close == std::string_view::npos) {
      errors->push_back("unterminated " + Quote(text.substr(start)) + ": a ${ has no closing }; " +
                        kExpansionHelp);
      return std::nullopt;
    }
    std::string_view inner = text.substr(i + 2, close - i - 2);
    std::size_t name_end = 0;
    while (name_end < inner.size() && IsVariableChar(inner[name_end])) ++name_end;
    std::string name(inner.substr(0, name_end));
    std::string_view rest = inner.substr(name_end);
    std::optional<std::string_view> fallback;
    if (rest.substr(0, 2) == ":-") fallback = rest.substr(2);
    std::string_view reference = text.substr(start, close - start + 1);
    if (name.empty() || !IsVariableStart(name[0]) || (!rest.empty() && !fallback)) {
      errors->push_back("malformed " + Quote(reference) +
                        ": a variable name is letters, digits and _, not starting with a digit; " +
                        kExpansionHelp);
      return std::nullopt;
    }
    if (fallback && fallback->find("${") != std::string_view::npos) {
      errors->push_back("malformed " + Quote(text.substr(start)) +
                        ": a default cannot contain another ${...}; write the default value itself");
      return std::nullopt;
    }
    std::optional<std::string> value = env(name);
    if (value && !(fallback && value->empty())) {
      out += *value;
    } else if (fallback) {
      out += *fallback;
    } else {
      errors->push_back("environment variable " + name + " is not set; set " + name + " or write ${" + name +
                        ":-default}");
      failed = true;
    }
    i = close + 1;
  }
  if (failed) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------
// The parser of one file

const std::vector<std::string> kTopKeys = {"server", "log", "database", "stage"};

template <typename S>
const HostKey<S>& KeyNamed(const std::vector<HostKey<S>>& keys, const std::string& name) {
  for (const auto& k : keys)
    if (k.key.name == name) return k;
  std::abort();  // only called with the names host_keys.cc declares
}

template <typename S>
const HostKey<S>* FindKey(const std::vector<HostKey<S>>& keys, const std::string& name) {
  for (const auto& k : keys)
    if (k.key.name == name) return &k;
  return nullptr;
}

class Parser {
 public:
  Parser(std::string file, const Environment& env)
      : file_(std::move(file)), folder_(std::filesystem::path(file_).parent_path()), env_(env) {}

  void Parse(const toml::table& root, PipelineConfig* config) {
    for (auto&& [key, node] : root) {
      const std::string name(key.str());
      if (name == "server") {
        if (const toml::table* table = Table(node, "server", "write the settings under a [server] header"))
          ParseServer(*table, &config->server);
      } else if (name == "log") {
        if (const toml::table* table = Table(node, "log", "write the settings under a [log] header"))
          ReadTable(*table, "log", "[log]", LogKeys(), &config->log);
      } else if (name == "database") {
        ParseDatabases(node, &config->databases);
      } else if (name == "stage") {
        ParseStages(node, &config->stages);
      } else {
        Error(key.source(), name, UnknownKeyMessage(name, kTopKeys, false));
      }
    }
    if (!root.contains("stage")) {
      Error(toml::source_region{{1, 1}, {1, 1}, nullptr}, "stage",
            "no stages: declare at least one [[stage]] with a name and a plugin");
    }
    CheckStageDatabases();
  }

  std::vector<ConfigError> TakeErrors() {
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
    });
    return std::move(errors_);
  }

 private:
  SourceLocation Where(const toml::source_region& region) const {
    return {file_, static_cast<int>(region.begin.line), static_cast<int>(region.begin.column)};
  }

  void Error(const toml::source_region& region, std::string key, std::string message) {
    errors_.push_back({Where(region), std::move(key), std::move(message)});
  }

  // "integer 5", "string \"x\"", "a table", ...
  static std::string Describe(const toml::node& node) {
    switch (node.type()) {
      case toml::node_type::string:
        return "string " + Quote(node.as_string()->get());
      case toml::node_type::integer:
        return "integer " + std::to_string(node.as_integer()->get());
      case toml::node_type::floating_point: {
        std::ostringstream text;
        text << node.as_floating_point()->get();
        return "float " + text.str();
      }
      case toml::node_type::boolean:
        return node.as_boolean()->get() ? "boolean true" : "boolean false";
      case toml::node_type::array:
        return "an array";
      case toml::node_type::table:
        return "a table";
      case toml::node_type::date:
        return "a date";
      case toml::node_type::time:
        return "a time";
      case toml::node_type::date_time:
        return "a date-time";
      default:
        return "nothing";
    }
  }

  // A table, or an error saying what was expected instead.
  const toml::table* Table(const toml::node& node, const std::string& key, const std::string& how) {
    if (const toml::table* table = node.as_table()) return table;
    Error(node.source(), key, "expected a table, got " + Describe(node) + "; " + how);
    return nullptr;
  }

  std::optional<std::string> ExpandAt(std::string_view text, const toml::node& node, const std::string& key) {
    std::vector<std::string> messages;
    std::optional<std::string> out;
    try {
      out = Expand(text, env_, &messages);
    } catch (const std::exception& e) {
      messages.push_back(std::string("reading the environment failed: ") + e.what());
    }
    for (auto& message : messages) Error(node.source(), key, std::move(message));
    return messages.empty() ? out : std::nullopt;
  }

  // The node as a ConfigValue, strings expanded; nullopt (error recorded) for
  // other TOML types or a failed expansion.
  std::optional<ConfigValue> Scalar(const toml::node& node, const std::string& key, const std::string& what) {
    switch (node.type()) {
      case toml::node_type::string: {
        auto text = ExpandAt(node.as_string()->get(), node, key);
        if (!text) return std::nullopt;
        return ConfigValue{std::move(*text)};
      }
      case toml::node_type::integer:
        return ConfigValue{node.as_integer()->get()};
      case toml::node_type::floating_point:
        return ConfigValue{node.as_floating_point()->get()};
      case toml::node_type::boolean:
        return ConfigValue{node.as_boolean()->get()};
      default:
        Error(node.source(), key, what + ", got " + Describe(node));
        return std::nullopt;
    }
  }

  // The node checked as a value of `host_key` (type, bounds, allowed
  // values, then its rule); nullopt with the error recorded otherwise.
  template <typename S>
  std::optional<ConfigValue> Value(const toml::node& node, const std::string& key, const HostKey<S>& host_key) {
    const ConfigKey& k = host_key.key;
    auto raw = Scalar(node, key,
                      std::string("expected ") + (k.type == ConfigType::kInteger ? "an " : "a ") +
                          ConfigTypeName(k.type));
    if (!raw) return std::nullopt;
    std::string error;
    std::optional<ConfigValue> value = CheckValue(*raw, k, folder_, &error);
    if (value && host_key.rule) error = host_key.rule(*value);
    if (!error.empty()) {
      Error(node.source(), key, error);
      return std::nullopt;
    }
    return value;
  }

  // Stores every key of `table` that has a setter into `out`; a key without
  // one is left to the caller. Records unknown keys (with a suggestion) and
  // missing required ones; `label` prefixes each key in errors, `header`
  // ("[[stage]]") says where to add a missing one.
  template <typename S>
  void ReadTable(const toml::table& table, const std::string& label, const std::string& header,
                 const std::vector<HostKey<S>>& keys, S* out) {
    for (auto&& [k, node] : table) {
      const std::string name(k.str());
      const HostKey<S>* host_key = FindKey(keys, name);
      if (!host_key) {
        Error(k.source(), label + "." + name, UnknownKeyMessage(name, NamesOf(keys), false));
      } else if (host_key->set) {
        if (auto value = Value(node, label + "." + name, *host_key)) host_key->set(*out, *value);
      }
    }
    for (const auto& host_key : keys) {
      const std::string& name = host_key.key.name;
      if (!host_key.required || table.contains(name)) continue;
      Error(table.source(), label + "." + name,
            "missing required key '" + name + "'; add " + name + " = " + host_key.key.description + " to this " +
                header);
    }
  }

  // The `name` of a [[database]] or [[stage]], unique among its kind; it
  // labels the other errors of its table, so it is read first.
  template <typename S>
  std::optional<std::string> ReadName(const toml::table& table, const std::string& fallback_key, const char* kind,
                                      const std::vector<HostKey<S>>& keys, std::map<std::string, int>* first_line) {
    const toml::node* node = table.get("name");
    if (!node) return std::nullopt;  // reported by ReadTable as missing
    auto value = Value(*node, fallback_key + ".name", KeyNamed(keys, "name"));
    if (!value) return std::nullopt;
    const std::string& name = std::get<std::string>(*value);
    auto [it, inserted] = first_line->emplace(name, static_cast<int>(table.source().begin.line));
    if (!inserted) {
      Error(node->source(), std::string(kind) + "[" + name + "].name",
            std::string("duplicate ") + kind + " name; the [[" + kind + "]] at line " + std::to_string(it->second) +
                " already uses it, give each " + kind + " a unique name");
    }
    return name;
  }

  void ParseServer(const toml::table& table, ServerSettings* server) {
    ReadTable(table, "server", "[server]", ServerKeys(), server);
    if (const toml::node* node = table.get("plugin_path")) ParsePluginPath(*node, "server.plugin_path", server);
  }

  // An array of folders, each resolved against the config file's folder.
  void ParsePluginPath(const toml::node& node, const std::string& key, ServerSettings* server) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), key, "expected an array of strings (e.g. [\"plugins\"]), got " + Describe(node));
      return;
    }
    const HostKey<ServerSettings>& folder_key = KeyNamed(ServerKeys(), "plugin_path");
    std::vector<std::filesystem::path> paths;
    bool ok = true;
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string entry_key = key + "[" + std::to_string(i) + "]";
      std::optional<ConfigValue> path = Value(entry, entry_key, folder_key);
      const std::string* folder = path ? std::get_if<std::string>(&*path) : nullptr;
      if (folder && folder->empty()) {
        Error(entry.source(), entry_key, "empty folder name; remove the entry or name a folder");
        folder = nullptr;
      }
      if (!folder) {
        ok = false;
        continue;
      }
      paths.emplace_back(*folder);
    }
    if (ok) server->plugin_path = std::move(paths);
  }

  void ParseDatabases(const toml::node& node, std::vector<DatabaseSettings>* databases) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), "database",
            "expected an array of tables, got " + Describe(node) +
                "; declare each database under its own [[database]]");
      return;
    }
    std::map<std::string, int> first_line;  // database name -> line of its header
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string fallback_key = "database[#" + std::to_string(i + 1) + "]";
      const toml::table* table =
          Table(entry, fallback_key, "declare each database under its own [[database]]");
      if (!table) continue;
      if (auto database = ParseDatabase(*table, fallback_key, &first_line)) {
        databases->push_back(std::move(*database));
      }
    }
  }

  std::optional<DatabaseSettings> ParseDatabase(const toml::table& table, const std::string& fallback_key,
                                                std::map<std::string, int>* first_line) {
    const std::size_t errors_before = errors_.size();
    DatabaseSettings database;
    database.where = Where(table.source());
    std::string label = fallback_key;
    if (auto name = ReadName(table, fallback_key, "database", DatabaseKeys(), first_line)) {
      label = "database[" + *name + "]";
      database.name = *name;
      declared_databases_.push_back(*name);
    }
    ReadTable(table, label, "[[database]]", DatabaseKeys(), &database);
    if (!database.url.empty()) {
      try {
        stowage::database::ParseEndpoint(database.url, database.name.empty() ? label : database.name,
                                         database.connect_timeout);
      } catch (const std::exception& e) {
        // The message names what is wrong, never the password.
        Error(table.get("url")->source(), label + ".url", e.what());
      }
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return database;
  }

  // A stage's `database` must name a [[database]] of the file, declared
  // before or after the stage.
  void CheckStageDatabases() {
    for (const auto& reference : database_references_) {
      if (std::find(declared_databases_.begin(), declared_databases_.end(), reference.name) !=
          declared_databases_.end()) {
        continue;
      }
      if (declared_databases_.empty()) {
        Error(reference.where, reference.key,
              "no [[database]] is declared; add a [[database]] with name = " + Quote(reference.name) +
                  " and a url, or remove this key");
        continue;
      }
      std::string message = "no [[database]] named " + Quote(reference.name);
      std::string suggestion = SuggestKey(reference.name, declared_databases_);
      if (!suggestion.empty()) {
        message += "; did you mean '" + suggestion + "'? (declared: " + JoinKeys(declared_databases_) + ")";
      } else {
        message += "; declared: " + JoinKeys(declared_databases_) + "; name one of them or declare it";
      }
      Error(reference.where, reference.key, message);
    }
  }

  void ParseStages(const toml::node& node, std::vector<StageSettings>* stages) {
    const toml::array* array = node.as_array();
    if (!array) {
      Error(node.source(), "stage",
            "expected an array of tables, got " + Describe(node) +
                "; declare each stage under its own [[stage]]");
      return;
    }
    if (array->empty()) {
      Error(node.source(), "stage", "no stages: declare at least one [[stage]] with a name and a plugin");
      return;
    }
    std::map<std::string, int> first_line;  // stage name -> line of its header
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& entry = *array->get(i);
      const std::string fallback_key = "stage[#" + std::to_string(i + 1) + "]";
      const toml::table* table = Table(entry, fallback_key, "declare each stage under its own [[stage]]");
      if (!table) continue;
      if (auto stage = ParseStage(*table, fallback_key, &first_line)) stages->push_back(std::move(*stage));
    }
  }

  std::optional<StageSettings> ParseStage(const toml::table& table, const std::string& fallback_key,
                                          std::map<std::string, int>* first_line) {
    const std::size_t errors_before = errors_.size();
    StageSettings stage;
    stage.where = Where(table.source());
    std::string label = fallback_key;
    if (auto name = ReadName(table, fallback_key, "stage", StageKeys(), first_line)) {
      label = "stage[" + *name + "]";
      stage.name = *name;
    }
    ReadTable(table, label, "[[stage]]", StageKeys(), &stage);
    if (const toml::node* config = table.get("config")) ParseStageConfig(*config, label + ".config", &stage.config);
    if (!stage.database.empty())
      database_references_.push_back({label + ".database", stage.database, table.get("database")->source()});
    if (stage.journal.value_or(false) && stage.policy == Policy::kRequired) {
      Error(table.get("journal")->source(), label + ".journal",
            "a required stage is never journaled: its failure fails the request and nothing is stored; "
            "remove journal = true or make the stage best_effort");
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return stage;
  }

  void ParseStageConfig(const toml::node& node, const std::string& key,
                        std::map<std::string, RawValue>* out) {
    const toml::table* table =
        Table(node, key, "write config = { key = value, ... } or the keys under a [stage.config] header");
    if (!table) return;
    for (auto&& [k, value] : *table) {
      const std::string name(k.str());
      auto v =
          Scalar(value, key + "." + name, "stage config values must be a string, integer, float or boolean");
      if (v) (*out)[name] = RawValue{std::move(*v), Where(value.source())};
    }
  }

  // A stage's `database` key, checked once every [[database]] is known.
  struct DatabaseReference {
    std::string key;
    std::string name;
    toml::source_region where;
  };

  std::string file_;
  std::filesystem::path folder_;  // relative paths of the file resolve against it
  const Environment& env_;
  std::vector<ConfigError> errors_;
  std::vector<std::string> declared_databases_;  // every valid name, in file order
  std::vector<DatabaseReference> database_references_;
};

}  // namespace

std::string ConfigError::ToString() const {
  std::string out = where.file;
  if (where.line > 0) out += ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

std::string FormatErrors(const std::vector<ConfigError>& errors) {
  std::string out;
  for (const auto& error : errors) {
    if (!out.empty()) out += '\n';
    out += error.ToString();
  }
  return out;
}

Environment ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (const char* value = std::getenv(name.c_str())) return std::string(value);
    return std::nullopt;
  };
}

LoadResult ParsePipelineConfig(std::string_view text, const std::string& file, const Environment& env) {
  LoadResult result;
  try {
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file));
    } catch (const toml::parse_error& e) {
      const auto& begin = e.source().begin;
      result.errors.push_back(
          {{file, static_cast<int>(begin.line), static_cast<int>(begin.column)},
           "",
           "TOML syntax error: " + std::string(e.description()) + "; fix the file at this place"});
      return result;
    }
    PipelineConfig config;
    config.file = file;
    Parser parser(file, env);
    parser.Parse(root, &config);
    result.errors = parser.TakeErrors();
    if (result.errors.empty()) result.config = std::move(config);
  } catch (const std::exception& e) {
    result.config.reset();
    result.errors.push_back({{file, 0, 0}, "", std::string("reading the config failed: ") + e.what()});
  }
  return result;
}

LoadResult LoadPipelineConfig(const std::filesystem::path& file, const Environment& env) {
  LoadResult result;
  const std::string name = file.string();
  auto fail = [&](const std::string& reason) {
    result.errors.push_back(
        {{name, 0, 0},
         "",
         "cannot read the config file: " + reason + "; check the path and its permissions"});
    return result;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec)) return fail("it is a directory");
  std::FILE* stream = std::fopen(name.c_str(), "rb");
  if (!stream) return fail(std::generic_category().message(errno));
  std::string text;
  char buffer[8192];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, stream)) > 0) text.append(buffer, n);
  const bool read_failed = std::ferror(stream);
  const int read_errno = errno;
  std::fclose(stream);
  if (read_failed) return fail(std::generic_category().message(read_errno));
  result = ParsePipelineConfig(text, name, env);
  if (result.config) result.config->file = file;
  return result;
}

std::vector<ConfigError> ValidateStageConfig(const StageSettings& stage, const std::string& config_file,
                                             const stowage::ConfigSchema& schema, stowage::StageConfig* out) {
  std::vector<ConfigError> errors;
  const std::filesystem::path folder = std::filesystem::path(config_file).parent_path();
  const std::string prefix = "stage[" + (stage.name.empty() ? std::string("?") : stage.name) + "].config.";
  std::vector<std::string> known;
  for (const auto& key : schema.keys()) known.push_back(key.name);

  std::map<std::string, ConfigValue> values;
  for (const auto& [name, raw] : stage.config) {
    SourceLocation where = raw.where;
    if (where.file.empty()) where.file = config_file;
    const stowage::ConfigKey* key = schema.find(name);
    if (!key) {
      errors.push_back({where, prefix + name, UnknownKeyMessage(name, known, true)});
      continue;
    }
    std::string error;
    if (auto value = CheckValue(raw.value, *key, folder, &error)) {
      values[name] = std::move(*value);
    } else {
      errors.push_back({where, prefix + name, error});
    }
  }
  for (const auto& key : schema.keys()) {
    if (stage.config.count(key.name)) continue;
    if (key.default_value) {
      values[key.name] = *key.default_value;
      continue;
    }
    SourceLocation where = stage.where;
    if (where.file.empty()) where.file = config_file;
    std::string message = "missing required key '" + key.name + "' (" + ConfigTypeName(key.type);
    if (!key.description.empty()) message += ": " + key.description;
    message += "); add " + key.name + " = ... to this stage's config table";
    errors.push_back({where, prefix + key.name, message});
  }
  std::stable_sort(errors.begin(), errors.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  if (errors.empty() && out) *out = stowage::StageConfig(std::move(values));
  return errors;
}

}  // namespace stowage::config
