// The Grafana dashboard docs/grafana/stowage.json against a live stowaged:
// every metric its queries name (panel targets and template variables) is
// in the server's /metrics, with the labels the queries select and group
// by; it queries every family docs/operations.md lists, and only those; and
// it is a dashboard Grafana can import (unique panel ids, every query on the
// ${datasource} variable, panels that do not overlap). Each check is also
// run on a doctored copy, to see that it names what is wrong.
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "scratch_database.h"
#include "stowaged_process.h"
#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;

constexpr const char* kToken = "dashboard-admin-token";
// Labels Prometheus adds to every series it scrapes: never in /metrics.
const std::set<std::string> kScrapeLabels = {"job", "instance"};
// Variables Grafana defines itself.
const std::set<std::string> kGrafanaVariables = {"__rate_interval", "__interval", "__range", "__interval_ms",
                                                 "__range_s"};

fs::path DashboardFile() {
  return fs::path(STOWAGE_SOURCE_DIR) / "docs" / "grafana" / "stowage.json";
}

json::value LoadDashboard() {
  boost::system::error_code ec;
  json::value dashboard = json::parse(ReadFile(DashboardFile()), ec);
  EXPECT_FALSE(ec) << DashboardFile() << " is not JSON: " << ec.message();
  return dashboard;
}

// ---------------------------------------------------------------------------
// /metrics

// What a /metrics text serves: each family's type (from its # TYPE line) and,
// for each sample name, the label names of its series.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, std::set<std::string>> labels;

  // The family a sample name belongs to: itself, or the histogram (summary)
  // whose _bucket, _sum or _count it is; "" when it is none served.
  std::string FamilyOf(const std::string& name) const {
    if (types.count(name)) return name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string s = suffix;
      if (name.size() <= s.size() || name.compare(name.size() - s.size(), s.size(), s) != 0) continue;
      const auto family = types.find(name.substr(0, name.size() - s.size()));
      if (family == types.end()) continue;
      if (family->second == "histogram" || (family->second == "summary" && s != "_bucket"))
        return family->first;
    }
    return "";
  }
};

Exposition ParseExposition(const std::string& text) {
  Exposition served;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      served.types[name] = type;
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const std::size_t name_end = line.find_first_of("{ ");
    std::set<std::string>& labels = served.labels[line.substr(0, name_end)];
    if (name_end == std::string::npos || line[name_end] != '{') continue;
    // name="value",... with \" and \\ escaped in the values.
    std::size_t i = name_end + 1;
    while (i < line.size() && line[i] != '}') {
      const std::size_t eq = line.find('=', i);
      if (eq == std::string::npos) break;
      labels.insert(line.substr(i, eq - i));
      i = eq + 2;  // past ="
      while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
      ++i;  // past the closing quote
      if (i < line.size() && line[i] == ',') ++i;
    }
  }
  return served;
}

// ---------------------------------------------------------------------------
// PromQL, as far as the checks need it

// What one query refers to: metric names with the labels its selectors
// match on, labels it groups by (by, without, on, ignoring, group_left,
// group_right; and the label of label_values()), and template variables.
struct QueryRefs {
  std::map<std::string, std::set<std::string>> metrics;
  std::set<std::string> grouping;
  bool has_by = false;
  std::set<std::string> variables;
  std::vector<std::string> errors;
};

bool IdentStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IdentChar(char c) {
  return IdentStart(c) || std::isdigit(static_cast<unsigned char>(c));
}

struct Token {
  enum Kind { kIdent, kString, kNumber, kVariable, kPunct } kind;
  std::string text;
};

std::vector<Token> Tokenize(const std::string& expr) {
  std::vector<Token> tokens;
  std::size_t i = 0;
  while (i < expr.size()) {
    const char c = expr[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '#') {
      while (i < expr.size() && expr[i] != '\n') ++i;
    } else if (c == '"' || c == '\'' || c == '`') {
      std::size_t j = i + 1;
      while (j < expr.size() && expr[j] != c) j += (expr[j] == '\\' && c != '`') ? 2 : 1;
      const std::string text = expr.substr(i + 1, j - i - 1);
      tokens.push_back({Token::kString, text});
      // Grafana replaces variables inside strings too ({job=~"$job"}).
      for (const Token& inner : Tokenize(text))
        if (inner.kind == Token::kVariable) tokens.push_back(inner);
      i = j + 1;
    } else if (c == '$') {
      // $name, ${name} or ${name:format}
      std::size_t j = i + 1;
      const bool braced = j < expr.size() && expr[j] == '{';
      if (braced) ++j;
      const std::size_t start = j;
      while (j < expr.size() && IdentChar(expr[j])) ++j;
      tokens.push_back({Token::kVariable, expr.substr(start, j - start)});
      if (braced) j = expr.find('}', j) == std::string::npos ? expr.size() : expr.find('}', j) + 1;
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < expr.size() && std::isdigit(static_cast<unsigned char>(expr[i + 1])))) {
      std::size_t j = i;
      while (j < expr.size() && (IdentChar(expr[j]) || expr[j] == '.')) ++j;
      tokens.push_back({Token::kNumber, expr.substr(i, j - i)});
      i = j;
    } else if (IdentStart(c)) {
      std::size_t j = i;
      while (j < expr.size() && IdentChar(expr[j])) ++j;
      tokens.push_back({Token::kIdent, expr.substr(i, j - i)});
      i = j;
    } else {
      tokens.push_back({Token::kPunct, std::string(1, c)});
      ++i;
    }
  }
  return tokens;
}

bool Is(const std::vector<Token>& t, std::size_t i, const char* punct) {
  return i < t.size() && t[i].kind == Token::kPunct && t[i].text == punct;
}

QueryRefs ParseQuery(const std::string& expr) {
  static const std::set<std::string> kGroupingKeywords = {"by",       "without",    "on",
                                                          "ignoring", "group_left", "group_right"};
  QueryRefs refs;
  const std::vector<Token> t = Tokenize(expr);
  for (const Token& token : t)
    if (token.kind == Token::kVariable) refs.variables.insert(token.text);
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (Is(t, i, "{")) {
      // A selector: the labels it matches on (each after { or a comma).
      std::string metric;
      if (i > 0 && t[i - 1].kind == Token::kIdent) metric = t[i - 1].text;
      if (metric.empty()) refs.errors.push_back("a selector without a metric name in: " + expr);
      std::set<std::string>& labels = refs.metrics[metric];
      for (++i; i < t.size() && !Is(t, i, "}"); ++i)
        if (t[i].kind == Token::kIdent && (Is(t, i - 1, "{") || Is(t, i - 1, ","))) labels.insert(t[i].text);
    } else if (t[i].kind == Token::kIdent && kGroupingKeywords.count(t[i].text) && Is(t, i + 1, "(")) {
      if (t[i].text == "by") refs.has_by = true;
      for (i += 2; i < t.size() && !Is(t, i, ")"); ++i)
        if (t[i].kind == Token::kIdent) refs.grouping.insert(t[i].text);
    } else if (t[i].kind == Token::kIdent && t[i].text == "label_values" && Is(t, i + 1, "(")) {
      // label_values(selector, label): the label is the last identifier before
      // the closing parenthesis, after a comma at depth 1.
      int depth = 0;
      for (std::size_t j = i + 1; j < t.size(); ++j) {
        if (Is(t, j, "(") || Is(t, j, "{")) ++depth;
        if (Is(t, j, ")") || Is(t, j, "}")) --depth;
        if (depth == 0) break;
        if (depth == 1 && t[j].kind == Token::kIdent && Is(t, j - 1, ",")) refs.grouping.insert(t[j].text);
      }
    } else if (t[i].kind == Token::kIdent && t[i].text.rfind("stowage_", 0) == 0 && !Is(t, i + 1, "{")) {
      refs.metrics[t[i].text];  // a metric without a selector
    }
  }
  return refs;
}

// Where a query sits in the dashboard, and what it says.
struct Query {
  std::string where;
  std::string expr;
  std::string legend;
};

std::string Text(const json::object& o, const char* key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : "";
}

std::string PanelName(const json::object& panel) {
  std::string id = panel.contains("id") ? json::serialize(panel.at("id")) : "?";
  return "panel " + id + " \"" + Text(panel, "title") + "\"";
}

// Every panel, the panels of collapsed rows included.
std::vector<json::object> AllPanels(const json::value& dashboard) {
  std::vector<json::object> all;
  if (!dashboard.is_object()) return all;
  const json::value* panels = dashboard.as_object().if_contains("panels");
  if (!panels || !panels->is_array()) return all;
  for (const auto& p : panels->as_array()) {
    if (!p.is_object()) continue;
    all.push_back(p.as_object());
    if (const json::value* nested = p.as_object().if_contains("panels"); nested && nested->is_array())
      for (const auto& n : nested->as_array())
        if (n.is_object()) all.push_back(n.as_object());
  }
  return all;
}

std::vector<json::object> Variables(const json::value& dashboard) {
  std::vector<json::object> list;
  if (!dashboard.is_object()) return list;
  const json::value* templating = dashboard.as_object().if_contains("templating");
  if (!templating || !templating->is_object()) return list;
  const json::value* vars = templating->as_object().if_contains("list");
  if (!vars || !vars->is_array()) return list;
  for (const auto& v : vars->as_array())
    if (v.is_object()) list.push_back(v.as_object());
  return list;
}

// The queries of every panel target and of every query variable.
std::vector<Query> Queries(const json::value& dashboard) {
  std::vector<Query> queries;
  for (const auto& panel : AllPanels(dashboard)) {
    const json::value* targets = panel.if_contains("targets");
    if (!targets || !targets->is_array()) continue;
    for (const auto& target : targets->as_array()) {
      if (!target.is_object()) continue;
      const json::object& t = target.as_object();
      queries.push_back(
          {PanelName(panel) + " target " + Text(t, "refId"), Text(t, "expr"), Text(t, "legendFormat")});
    }
  }
  for (const auto& variable : Variables(dashboard)) {
    if (Text(variable, "type") != "query") continue;
    std::string expr = Text(variable, "query");
    if (const json::value* q = variable.if_contains("query"); q && q->is_object())
      expr = Text(q->as_object(), "query");
    queries.push_back({"variable $" + Text(variable, "name"), expr, ""});
  }
  return queries;
}

// The families the dashboard's queries name: a histogram's _bucket, _sum and
// _count are named by their family when `is_family` says it is one.
template <typename IsFamily>
std::set<std::string> QueriedFamilies(const json::value& dashboard, IsFamily is_family) {
  std::set<std::string> families;
  for (const auto& query : Queries(dashboard))
    for (const auto& [metric, labels] : ParseQuery(query.expr).metrics) {
      if (metric.empty()) continue;
      std::string family = metric;
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (metric.size() > s.size() && metric.compare(metric.size() - s.size(), s.size(), s) == 0 &&
            is_family(metric.substr(0, metric.size() - s.size())))
          family = metric.substr(0, metric.size() - s.size());
      }
      families.insert(family);
    }
  return families;
}

// ---------------------------------------------------------------------------
// The checks. Each returns one line per problem, naming where it is.

// What the dashboard's queries ask of `served` that it does not serve.
std::vector<std::string> UnservedProblems(const json::value& dashboard, const Exposition& served) {
  std::vector<std::string> problems;
  std::set<std::string> seen;
  auto add = [&](const std::string& line) {
    if (seen.insert(line).second) problems.push_back(line);
  };
  for (const auto& query : Queries(dashboard)) {
    if (query.expr.empty()) {
      add(query.where + ": no query");
      continue;
    }
    const QueryRefs refs = ParseQuery(query.expr);
    for (const auto& error : refs.errors) add(query.where + ": " + error);
    if (refs.metrics.empty()) add(query.where + ": names no stowage_ metric: " + query.expr);
    std::set<std::string> available = kScrapeLabels;
    for (const auto& [metric, selected] : refs.metrics) {
      if (metric.empty()) continue;
      const std::string family = served.FamilyOf(metric);
      if (family.empty()) {
        add(query.where + ": metric " + metric + " is not in /metrics");
        continue;
      }
      if (family == metric && served.types.at(family) == "histogram") {
        add(query.where + ": metric " + metric + " is a histogram: query its _bucket, _sum or _count");
        continue;
      }
      const auto samples = served.labels.find(metric);
      if (samples == served.labels.end()) {
        add(query.where + ": metric " + metric + " has no sample in /metrics");
        continue;
      }
      available.insert(samples->second.begin(), samples->second.end());
      for (const auto& label : selected)
        if (!kScrapeLabels.count(label) && !samples->second.count(label))
          add(query.where + ": metric " + metric + " has no label " + label);
    }
    for (const auto& label : refs.grouping)
      if (!available.count(label))
        add(query.where + ": groups by label " + label + ", which no metric it names has");
    // {{label}} in the legend: a label the result keeps.
    static const std::regex kLegendLabel(R"(\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\})");
    for (std::sregex_iterator m(query.legend.begin(), query.legend.end(), kLegendLabel), end; m != end; ++m) {
      const std::string label = (*m)[1];
      const bool kept = refs.has_by ? refs.grouping.count(label) > 0 : available.count(label) > 0;
      if (!kept)
        add(query.where + ": legend shows {{" + label + "}}, which the query's result does not keep");
    }
  }
  return problems;
}

// What keeps the dashboard from being a sound Grafana dashboard on the
// ${datasource} variable.
std::vector<std::string> ModelProblems(const json::value& dashboard) {
  std::vector<std::string> problems;
  if (!dashboard.is_object()) return {"the dashboard is not a JSON object"};
  const json::object& root = dashboard.as_object();
  if (Text(root, "title").empty()) problems.push_back("no title");
  if (Text(root, "uid").empty()) problems.push_back("no uid");
  const json::value* schema = root.if_contains("schemaVersion");
  if (!schema || !schema->is_int64() || schema->as_int64() < 36)
    problems.push_back("schemaVersion is missing or older than 36 (Grafana 9)");

  std::set<std::string> variables;
  bool datasource_variable = false;
  for (const auto& v : Variables(dashboard)) {
    variables.insert(Text(v, "name"));
    if (Text(v, "name") == "datasource" && Text(v, "type") == "datasource" &&
        Text(v, "query") == "prometheus")
      datasource_variable = true;
  }
  if (!datasource_variable)
    problems.push_back("no variable \"datasource\" of type datasource with query \"prometheus\"");

  auto on_variable = [](const json::object& o) {
    const json::value* ds = o.if_contains("datasource");
    if (!ds || !ds->is_object()) return false;
    const std::string uid = Text(ds->as_object(), "uid");
    return Text(ds->as_object(), "type") == "prometheus" && (uid == "${datasource}" || uid == "$datasource");
  };
  for (const auto& v : Variables(dashboard))
    if (Text(v, "type") == "query" && !on_variable(v))
      problems.push_back("variable $" + Text(v, "name") + ": its datasource is not ${datasource}");

  std::set<std::int64_t> ids;
  for (const auto& panel : AllPanels(dashboard)) {
    const std::string name = PanelName(panel);
    const json::value* id = panel.if_contains("id");
    if (!id || !id->is_int64())
      problems.push_back(name + ": no integer id");
    else if (!ids.insert(id->as_int64()).second)
      problems.push_back(name + ": id used by another panel");
    if (Text(panel, "type") == "row") continue;
    if (!on_variable(panel)) problems.push_back(name + ": its datasource is not ${datasource}");
    if (Text(panel, "description").find("docs/") == std::string::npos)
      problems.push_back(name + ": no description pointing to the docs");
    const json::value* unit = nullptr;
    if (const auto* fc = panel.if_contains("fieldConfig"); fc && fc->is_object())
      if (const auto* d = fc->as_object().if_contains("defaults"); d && d->is_object())
        unit = d->as_object().if_contains("unit");
    if (!unit || !unit->is_string() || unit->as_string().empty()) problems.push_back(name + ": no unit");
    const json::value* targets = panel.if_contains("targets");
    if (!targets || !targets->is_array() || targets->as_array().empty()) {
      problems.push_back(name + ": no targets");
      continue;
    }
    std::set<std::string> ref_ids;
    for (const auto& target : targets->as_array()) {
      if (!target.is_object()) continue;
      const json::object& t = target.as_object();
      const std::string where = name + " target " + Text(t, "refId");
      if (Text(t, "refId").empty() || !ref_ids.insert(Text(t, "refId")).second)
        problems.push_back(where + ": refId missing or used twice");
      if (!on_variable(t)) problems.push_back(where + ": its datasource is not ${datasource}");
    }
  }
  for (const auto& query : Queries(dashboard))
    for (const auto& v : ParseQuery(query.expr).variables)
      if (!variables.count(v) && !kGrafanaVariables.count(v))
        problems.push_back(query.where + ": uses $" + v + ", which is not a variable of the dashboard");

  // The grid: 24 columns; the top-level panels, and the panels of each
  // collapsed row, each a layout of their own without overlaps.
  struct Box {
    std::string name;
    std::int64_t x, y, w, h;
  };
  auto layout_problems = [&](const json::array& panels) {
    std::vector<Box> boxes;
    for (const auto& p : panels) {
      if (!p.is_object()) continue;
      const json::object& panel = p.as_object();
      const json::value* grid = panel.if_contains("gridPos");
      Box b{PanelName(panel), -1, -1, -1, -1};
      if (grid && grid->is_object()) {
        const json::object& g = grid->as_object();
        auto field = [&](const char* k) -> std::int64_t {
          const json::value* v = g.if_contains(k);
          return v && v->is_int64() ? v->as_int64() : -1;
        };
        b = {b.name, field("x"), field("y"), field("w"), field("h")};
      }
      if (b.x < 0 || b.y < 0 || b.w < 1 || b.h < 1 || b.x + b.w > 24) {
        problems.push_back(b.name + ": gridPos missing or outside the 24 columns");
        continue;
      }
      for (const Box& o : boxes)
        if (b.x < o.x + o.w && o.x < b.x + b.w && b.y < o.y + o.h && o.y < b.y + b.h)
          problems.push_back(b.name + ": overlaps " + o.name);
      boxes.push_back(b);
    }
  };
  if (const json::value* panels = root.if_contains("panels"); panels && panels->is_array()) {
    layout_problems(panels->as_array());
    for (const auto& p : panels->as_array())
      if (p.is_object())
        if (const json::value* nested = p.as_object().if_contains("panels"); nested && nested->is_array())
          layout_problems(nested->as_array());
  } else {
    problems.push_back("no panels");
  }
  return problems;
}

// The families of the table in docs/operations.md, "Metrics".
std::set<std::string> DocumentedFamilies() {
  std::set<std::string> families;
  std::istringstream lines(ReadFile(fs::path(STOWAGE_SOURCE_DIR) / "docs" / "operations.md"));
  static const std::regex kRow(R"(^\| `(stowage_[a-z0-9_]+)` \|)");
  std::smatch m;
  for (std::string line; std::getline(lines, line);)
    if (std::regex_search(line, m, kRow)) families.insert(m[1]);
  return families;
}

std::string Lines(const std::vector<std::string>& problems) {
  std::string out;
  for (const auto& p : problems) out += "  " + p + "\n";
  return out;
}

// Adds a timeseries panel with the query `expr` to a copy of `dashboard`.
json::value WithTarget(json::value dashboard, const std::string& expr, const std::string& legend = "") {
  json::object ds{{"type", "prometheus"}, {"uid", "${datasource}"}};
  dashboard.as_object()["panels"].as_array().push_back(json::object{
      {"type", "timeseries"},
      {"id", 9001},
      {"title", "doctored"},
      {"description", "see docs/operations.md"},
      {"datasource", ds},
      {"gridPos", json::object{{"x", 0}, {"y", 1000}, {"w", 24}, {"h", 8}}},
      {"fieldConfig", json::object{{"defaults", json::object{{"unit", "short"}}}}},
      {"targets", json::array{json::object{
                      {"refId", "A"}, {"datasource", ds}, {"expr", expr}, {"legendFormat", legend}}}}});
  return dashboard;
}

// ---------------------------------------------------------------------------
// The tests

TEST(DashboardTest, IsAGrafanaDashboardOnTheDatasourceVariable) {
  const json::value dashboard = LoadDashboard();
  ASSERT_TRUE(dashboard.is_object());
  const std::vector<std::string> problems = ModelProblems(dashboard);
  EXPECT_TRUE(problems.empty()) << DashboardFile() << ":\n" << Lines(problems);
  EXPECT_GE(Queries(dashboard).size(), 20u);

  // The check tells a broken copy: an id used twice, a panel on another
  // datasource, an overlap, an unknown variable.
  json::value broken = WithTarget(dashboard, "sum(rate(stowage_reloads_total{job=~\"$jobs\"}[5m]))");
  json::array& panels = broken.as_object()["panels"].as_array();
  json::object& added = panels.back().as_object();
  added["id"] = panels.front().as_object()["id"];
  added["datasource"] = json::object{{"type", "prometheus"}, {"uid", "prometheus-prod"}};
  added["gridPos"] = panels.front().as_object()["gridPos"];
  const std::string found = Lines(ModelProblems(broken));
  EXPECT_NE(found.find("panel 1 \"doctored\": id used by another panel"), std::string::npos) << found;
  EXPECT_NE(found.find("\"doctored\": its datasource is not ${datasource}"), std::string::npos) << found;
  EXPECT_NE(found.find("\"doctored\": overlaps"), std::string::npos) << found;
  EXPECT_NE(found.find("uses $jobs"), std::string::npos) << found;
}

TEST(DashboardTest, QueriesEveryDocumentedFamilyAndNoOther) {
  const std::set<std::string> documented = DocumentedFamilies();
  ASSERT_GE(documented.size(), 17u) << "docs/operations.md's table of families was not found";
  const std::set<std::string> queried =
      QueriedFamilies(LoadDashboard(), [&](const std::string& name) { return documented.count(name) > 0; });
  for (const auto& family : documented)
    EXPECT_TRUE(queried.count(family))
        << family << " is in docs/operations.md but no panel of " << DashboardFile() << " queries it";
  for (const auto& family : queried)
    EXPECT_TRUE(documented.count(family)) << DashboardFile() << " queries " << family
                                          << ", which the table in docs/operations.md does not list";
}

// redis and postgres (required) on the suite's servers, then a best_effort
// stage whose writes fail: its circuit opens after two, and what it misses is
// journaled in `database_url`.
std::string Pipeline(const std::string& database_url, const std::string& redis_url) {
  std::string toml = "[server]\nlisten = \"${STOWAGE_LISTEN}\"\nadmin_token_env = \"DASHBOARD_TEST_TOKEN\"\n";
  toml += std::string("plugin_path = [\"") + STOWAGE_PLUGIN_DIR + "\"]\n";
  toml += "[[database]]\nname = \"main\"\nurl = \"" + database_url + "\"\npool_size = 4\n";
  toml += "[[stage]]\nname = \"redis\"\nplugin = \"redis\"\npolicy = \"required\"\ntimeout_ms = 2000\n";
  toml += "[stage.config]\nurl = \"" + redis_url + "\"\n";
  toml +=
      "[[stage]]\nname = \"postgres\"\nplugin = \"postgres\"\npolicy = \"required\"\ndatabase = \"main\"\n";
  toml += std::string("[[stage]]\nname = \"flaky\"\nplugin = \"") + TEST_STAGE_PATH + "\"\n";
  toml += "policy = \"best_effort\"\ncircuit_threshold = 2\ncircuit_cooldown_ms = 60000\n";
  toml += "[stage.config]\ntarget = \"flaky\"\nwrite = \"fail\"\n";
  return toml;
}

// A stowaged with both servers and a best_effort stage that fails, so that
// the circuit and the journal have series; requests of each kind (stored,
// read, refused, replayed by Idempotency-Key) and a reload; then its /metrics.
class DashboardServedTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string redis_url = RequireEnv("STOWAGE_TEST_REDIS_URL");
    if (redis_url.empty()) return;
    database_ = new ScratchDatabase("dashboard");
    if (!database_->ok()) return;
    server_ =
        StowagedProcess::FromText(Pipeline(database_->url(), redis_url), {{"DASHBOARD_TEST_TOKEN", kToken}})
            .release();
    if (!server_->running()) return;
    const std::uint16_t port = server_->port();
    const std::string guest = "dashboard-" + std::to_string(::getpid());
    auto post = [&](const std::string& body,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
      return HttpClient(port).Send("POST", "/v1/guest/chat/" + guest, body, "application/json", headers);
    };
    const std::string message = R"({"role":"user","content":"where is parcel 7?"})";
    for (int i = 0; i < 3; ++i) EXPECT_EQ(post(message).status, 200);  // the third finds the circuit open
    EXPECT_EQ(post(message, {{"Idempotency-Key", "k-" + guest}}).status, 200);
    EXPECT_EQ(post(message, {{"Idempotency-Key", "k-" + guest}}).status, 200);  // replayed
    EXPECT_EQ(post(R"({"role":"user"})").status, 400);
    EXPECT_EQ(HttpClient(port).Send("GET", "/v1/guest/chat/" + guest).status, 200);
    EXPECT_EQ(
        HttpClient(port)
            .Send("POST", "/v1/admin/reload", "", "", {{"Authorization", std::string("Bearer ") + kToken}})
            .status,
        200);
    // The journal's gauges show once the replayer has counted the entries
    // (every second).
    for (int i = 0; i < 100; ++i) {
      metrics_ = HttpClient(port).Send("GET", "/metrics").body;
      if (metrics_.find("stowage_journal_backlog{stage=\"flaky\"}") != std::string::npos) break;
      std::this_thread::sleep_for(100ms);
    }
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    delete database_;
    database_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(server_ && server_->running()) << (server_ ? server_->log() : "");
    ASSERT_NE(metrics_.find("stowage_journal_backlog{stage=\"flaky\"}"), std::string::npos)
        << "the journal's gauges did not show:\n"
        << metrics_ << server_->log();
  }

  static ScratchDatabase* database_;
  static StowagedProcess* server_;
  static std::string metrics_;
};

ScratchDatabase* DashboardServedTest::database_ = nullptr;
StowagedProcess* DashboardServedTest::server_ = nullptr;
std::string DashboardServedTest::metrics_;

TEST_F(DashboardServedTest, EveryMetricAndLabelItQueriesIsServed) {
  const Exposition served = ParseExposition(metrics_);
  // The requests made the series a dashboard shows.
  EXPECT_EQ(served.types.count("stowage_circuit_state"), 1u);
  EXPECT_NE(metrics_.find("stowage_circuit_state{stage=\"flaky\"} 1"), std::string::npos) << metrics_;
  EXPECT_NE(metrics_.find("status=\"400\""), std::string::npos) << metrics_;

  const std::vector<std::string> problems = UnservedProblems(LoadDashboard(), served);
  EXPECT_TRUE(problems.empty()) << DashboardFile() << " asks for what stowaged does not serve:\n"
                                << Lines(problems) << "/metrics:\n"
                                << metrics_;
}

TEST_F(DashboardServedTest, TheCheckNamesWhatTheServerDoesNotServe) {
  const Exposition served = ParseExposition(metrics_);
  const std::size_t before = UnservedProblems(LoadDashboard(), served).size();
  json::value doctored = WithTarget(LoadDashboard(), "sum(rate(stowage_bogus_total{job=~\"$job\"}[5m]))");
  doctored = WithTarget(doctored, "sum by (stag) (rate(stowage_stage_calls_total{outcom=\"ok\"}[5m]))");
  doctored = WithTarget(doctored, "histogram_quantile(0.9, rate(stowage_stage_duration_seconds[5m]))");
  doctored = WithTarget(doctored, "sum by (route) (rate(stowage_http_requests_total[5m]))", "{{status}}");
  const std::vector<std::string> problems = UnservedProblems(doctored, served);
  const std::string found = Lines(problems);
  EXPECT_EQ(problems.size(), before + 5) << found;
  EXPECT_NE(found.find("metric stowage_bogus_total is not in /metrics"), std::string::npos) << found;
  EXPECT_NE(found.find("metric stowage_stage_calls_total has no label outcom"), std::string::npos) << found;
  EXPECT_NE(found.find("groups by label stag,"), std::string::npos) << found;
  EXPECT_NE(found.find("stowage_stage_duration_seconds is a histogram"), std::string::npos) << found;
  EXPECT_NE(found.find("legend shows {{status}}"), std::string::npos) << found;
}

}  // namespace
}  // namespace stowage::testing
