// End-to-end tests of stowage, the command-line tool: the real binary with
// the real plugins, against the suite's Redis and PostgreSQL and against a
// private PostgreSQL that the test stops.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"
#include "support/services.h"

namespace stowage::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;

// A folder of its own for one test, removed afterwards.
class StowageCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    folder_ = fs::temp_directory_path() / ("stowage_cli_test_" + std::to_string(::getpid())) /
              (std::string(info->test_suite_name()) + "." + info->name());
    fs::remove_all(folder_);
    fs::create_directories(folder_);
  }
  void TearDown() override { fs::remove_all(folder_.parent_path()); }

  // Writes `body` after a [server] table that finds the bundled plugins.
  fs::path WritePipeline(const std::string& body) {
    fs::path file = folder_ / "pipeline.toml";
    std::ofstream(file) << "[server]\nplugin_path = [\"" << STOWAGE_PLUGIN_DIR << "\"]\n\n"
                        << "[log]\nlevel = \"warn\"\n\n"
                        << body;
    return file;
  }

  struct Run {
    int exit_code = -1;
    std::string output;  // stdout and stderr
  };
  // Runs stowage with `args` and waits for it (at most 60 s).
  Run Stowage(std::vector<std::string> args) {
    args.insert(args.begin(), STOWAGE_CLI_PATH);
    ChildProcess process(args, folder_ / "out.log");
    auto exit_code = process.Wait(milliseconds(60000));
    Run run;
    run.output = process.ReadOutput();
    run.exit_code = exit_code.value_or(-1);
    return run;
  }

  fs::path folder_;
};

// A cache on Redis, a store on PostgreSQL through [[database]] `main`, and a
// disabled best-effort test stage.
std::string ChatPipeline(const std::string& redis_url, const std::string& database_url) {
  return "[[database]]\nname = \"main\"\nurl = \"" + database_url +
         "\"\nconnect_timeout_ms = 1000\n\n"
         "[[stage]]\nname = \"cache\"\nplugin = \"redis\"\npolicy = \"required\"\n"
         "config = { url = \"" +
         redis_url +
         "\" }\n\n"
         "[[stage]]\nname = \"store\"\nplugin = \"postgres\"\npolicy = \"required\"\ndatabase = \"main\"\n\n"
         "[[stage]]\nname = \"extra\"\nplugin = \"" TEST_STAGE_PATH
         "\"\npolicy = \"best_effort\"\nenabled = false\n";
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------
// stowage validate

TEST_F(StowageCliTest, ValidateReachesEveryTargetOfAGoodFileAndExitsZero) {
  std::string redis = RequireEnv("STOWAGE_TEST_REDIS_URL");
  std::string database = RequireEnv("STOWAGE_TEST_DATABASE_URL");
  if (redis.empty() || database.empty()) return;
  fs::path file = WritePipeline(ChatPipeline(redis, database));
  Run run = Stowage({"validate", file.string()});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(Contains(run.output, "cache  plugin=redis.so")) << run.output;
  EXPECT_TRUE(Contains(run.output, "cache  target=redis  ok\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "store  target=postgresql  ok\n")) << run.output;
  EXPECT_TRUE(Contains(run.output, "extra  target=-  disabled, not checked\n")) << run.output;
}

TEST_F(StowageCliTest, ValidateWithAStoppedDatabaseExitsThreeNamingTheStageAndNoEnvironmentExitsZero) {
  std::string redis = RequireEnv("STOWAGE_TEST_REDIS_URL");
  if (redis.empty()) return;
  ServiceInstance postgres(Service::kPostgres);
  ASSERT_TRUE(postgres.running());
  ASSERT_TRUE(postgres.Stop());
  fs::path file = WritePipeline(ChatPipeline(redis, postgres.url()));

  Run file_only = Stowage({"validate", "--no-environment", file.string()});
  EXPECT_EQ(file_only.exit_code, 0) << file_only.output;
  EXPECT_FALSE(Contains(file_only.output, "target=")) << file_only.output;

  auto started = std::chrono::steady_clock::now();
  Run checked = Stowage({"validate", file.string()});
  EXPECT_EQ(checked.exit_code, 3) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "cache  target=redis  ok\n")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "store  target=postgresql  unreachable: ")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "--no-environment")) << checked.output;
  // Each target gets 5 s at most, all at once.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));

  // The option may come after the file too.
  Run after = Stowage({"validate", file.string(), "--no-environment"});
  EXPECT_EQ(after.exit_code, 0) << after.output;
}

TEST_F(StowageCliTest, ValidateExitsOneWhenAStageCannotBeCreated) {
  fs::path file = WritePipeline("[[stage]]\nname = \"broken\"\nplugin = \"" TEST_STAGE_PATH
                                "\"\nconfig = { construct = \"throw\" }\n");
  Run checked = Stowage({"validate", file.string()});
  EXPECT_EQ(checked.exit_code, 1) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "broken")) << checked.output;
  EXPECT_TRUE(Contains(checked.output, "told to throw in the constructor")) << checked.output;

  Run file_only = Stowage({"validate", "--no-environment", file.string()});
  EXPECT_EQ(file_only.exit_code, 0) << file_only.output;
}

TEST_F(StowageCliTest, ValidateRefusesAnUnknownOption) {
  fs::path file = WritePipeline("");
  Run run = Stowage({"validate", "--no-enviroment", file.string()});
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_TRUE(Contains(run.output, "--no-enviroment")) << run.output;
}

TEST_F(StowageCliTest, HelpDocumentsTheExitCodes) {
  Run run = Stowage({"--help"});
  EXPECT_EQ(run.exit_code, 0);
  EXPECT_TRUE(Contains(run.output, "--no-environment")) << run.output;
  EXPECT_TRUE(Contains(run.output, "stowage graph FILE")) << run.output;
  EXPECT_TRUE(Contains(run.output, "\n  3  validate:")) << run.output;
}

// ---------------------------------------------------------------------------
// stowage graph

TEST_F(StowageCliTest, GraphPrintsStagesInOrderAndTheirDatabaseAsDot) {
  fs::path file =
      WritePipeline(ChatPipeline("redis://127.0.0.1:1/0", "postgresql://u:secret@127.0.0.1:1/db"));
  Run run = Stowage({"graph", file.string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string& dot = run.output;

  EXPECT_EQ(dot.rfind("digraph pipeline {\n", 0), 0u) << dot;
  EXPECT_TRUE(dot.ends_with("}\n")) << dot;
  // One node per stage, in file order, styled by policy and state.
  auto cache =
      dot.find("\"stage:cache\" [label=\"cache\\nplugin: redis\\nrequired\\nenabled\", style=\"solid\"]");
  auto store =
      dot.find("\"stage:store\" [label=\"store\\nplugin: postgres\\nrequired\\nenabled\", style=\"solid\"]");
  auto extra = dot.find("\"stage:extra\" [label=\"extra\\nplugin: " TEST_STAGE_PATH
                        "\\nbest_effort\\ndisabled\", style=\"dashed,filled\", color=grey");
  ASSERT_NE(cache, std::string::npos) << dot;
  ASSERT_NE(store, std::string::npos) << dot;
  ASSERT_NE(extra, std::string::npos) << dot;
  EXPECT_LT(cache, store);
  EXPECT_LT(store, extra);
  // Edges in order, then the database and who joins it.
  auto first = dot.find("\"stage:cache\" -> \"stage:store\";\n");
  auto second = dot.find("\"stage:store\" -> \"stage:extra\";\n");
  ASSERT_NE(first, std::string::npos) << dot;
  ASSERT_NE(second, std::string::npos) << dot;
  EXPECT_LT(first, second);
  EXPECT_TRUE(Contains(dot, "\"database:main\" [shape=cylinder, label=\"database\\nmain\"];\n")) << dot;
  EXPECT_TRUE(Contains(dot, "\"stage:store\" -> \"database:main\" [style=dotted")) << dot;
  EXPECT_FALSE(Contains(dot, "\"stage:cache\" -> \"database:main\"")) << dot;
  EXPECT_FALSE(Contains(dot, "secret")) << dot;

  // Every statement line ends with ';' or opens/closes the graph, and quotes balance.
  std::istringstream lines(dot);
  for (std::string line; std::getline(lines, line);) {
    bool framing = line == "digraph pipeline {" || line == "}";
    EXPECT_TRUE(framing || line.ends_with(";")) << line;
    std::size_t quotes = 0;
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\') {
        ++i;
        continue;
      }
      if (line[i] == '"') ++quotes;
    }
    EXPECT_EQ(quotes % 2, 0u) << line;
  }

  // Graphviz itself, where it is installed, must accept it.
  if (system("command -v dot >/dev/null 2>&1") == 0) {
    fs::path dot_file = folder_ / "pipeline.dot";
    std::ofstream(dot_file) << dot;
    ChildProcess graphviz({"dot", "-Tcanon", dot_file.string()}, folder_ / "dot.log");
    EXPECT_EQ(graphviz.Wait(milliseconds(30000)), 0) << graphviz.ReadOutput();
  }
}

TEST_F(StowageCliTest, GraphOfABadFileExitsOneWithTheErrors) {
  fs::path file = WritePipeline("[[stage]]\nname = \"cache\"\nplugin = \"redis\"\npolicy = \"sometimes\"\n");
  Run run = Stowage({"graph", file.string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_TRUE(Contains(run.output, file.string() + ":")) << run.output;
  EXPECT_TRUE(Contains(run.output, "policy")) << run.output;
  EXPECT_FALSE(Contains(run.output, "digraph")) << run.output;
}

}  // namespace
}  // namespace stowage::testing
