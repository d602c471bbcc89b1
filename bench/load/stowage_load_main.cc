// stowage-load: puts a running stowaged under POST and GET load on loopback
// and reports requests, failures, throughput and latency percentiles.
#include <boost/json/serialize.hpp>
#include <exception>
#include <fstream>
#include <iostream>
#include <variant>

#include "load_options.h"
#include "load_report.h"
#include "load_run.h"

int main(int argc, char** argv) {
  using namespace stowage::bench;
  try {
    auto parsed = ParseLoadOptions(std::vector<std::string>(argv + 1, argv + argc));
    if (auto* errors = std::get_if<std::vector<std::string>>(&parsed)) {
      for (const auto& error : *errors) std::cerr << "stowage-load: " << error << "\n";
      std::cerr << LoadUsage();
      return 2;
    }
    const auto& options = std::get<LoadOptions>(parsed);
    if (options.help) {
      std::cout << LoadUsage();
      return 0;
    }
    auto outcome = RunLoad(options);
    auto figures = ComputeFigures(&outcome);
    std::cout << FormatTable(options, figures) << std::flush;
    if (!options.json_path.empty()) {
      std::ofstream out(options.json_path);
      out << boost::json::serialize(FiguresToJson(options, figures)) << "\n";
      if (!out) {
        std::cerr << "stowage-load: could not write " << options.json_path
                  << "; check that its folder exists and is writable\n";
        return 2;
      }
    }
    return options.fail_on_error && figures.total().failed > 0 ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "stowage-load: stopped by an unexpected error: " << e.what()
              << "; report it with the command line\n";
    return 2;
  }
}
