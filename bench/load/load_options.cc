#include "load_options.h"

#include <boost/asio/ip/address.hpp>
#include <charconv>
#include <cmath>
#include <system_error>

namespace stowage::bench {
namespace {

bool ParseInt64(const std::string& text, std::int64_t* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty();
}

bool ParseDouble(const std::string& text, double* out) {
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, *out);
  return ec == std::errc() && ptr == end && !text.empty() && std::isfinite(*out);
}

// Reads an integer option into *out when it lies in [low, high]; else adds
// an error naming the option.
void IntOption(const std::string& name, const std::string& value, std::int64_t low, std::int64_t high,
               std::int64_t* out, std::vector<std::string>* errors) {
  std::int64_t parsed = 0;
  if (!ParseInt64(value, &parsed) || parsed < low || parsed > high) {
    errors->push_back(name + " must be a whole number from " + std::to_string(low) + " to " +
                      std::to_string(high) + "; it is '" + value + "'");
    return;
  }
  *out = parsed;
}

}  // namespace

std::string LoadUsage() {
  return "usage: stowage-load [options]\n"
         "  --url URL             stowaged to load, loopback only (default http://127.0.0.1:8000)\n"
         "  --connections N       threads, one keep-alive connection each (default 32, at most 1024)\n"
         "  --duration SECONDS    how long requests are started (default 10, at most 3600)\n"
         "  --guests N            guest ids bench-0 .. bench-<N-1> (default 1000)\n"
         "  --mix post=W,get=W    relative weights of POSTs and GETs (default post=1,get=1)\n"
         "  --content-bytes N     length of each message's content (default 200, at most 32768)\n"
         "  --max-requests N      stop after N requests in all (default: no cap)\n"
         "  --timeout SECONDS     a request not answered in time fails (default 10)\n"
         "  --json FILE           also write the figures to FILE as JSON\n"
         "  --fail-on-error       exit 1 when any request failed\n"
         "  --help                print this text\n"
         "Exit codes: 0 the run completed (1 with --fail-on-error and a failed request), 2 usage error.\n";
}

std::string ParseLoopbackUrl(const std::string& url, std::string* host, std::uint16_t* port) {
  const std::string scheme = "http://";
  const std::string hint = "; use http://127.0.0.1:PORT";
  if (url.rfind(scheme, 0) != 0) return "--url '" + url + "' must start with http://" + hint;
  std::string rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos) return "--url '" + url + "' must not have a path" + hint;
  std::string host_part;
  std::string port_part;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return "--url '" + url + "' has an unclosed '['" + hint;
    host_part = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return "--url '" + url + "' has text after ']' that is not a port" + hint;
      port_part = rest.substr(close + 2);
    }
  } else {
    auto colon = rest.rfind(':');
    host_part = rest.substr(0, colon);
    if (colon != std::string::npos) port_part = rest.substr(colon + 1);
  }
  std::int64_t port_value = 80;
  if (!port_part.empty() && (!ParseInt64(port_part, &port_value) || port_value < 1 || port_value > 65535)) {
    return "--url '" + url + "' has port '" + port_part + "'; a port is 1 to 65535";
  }
  if (host_part == "localhost") host_part = "127.0.0.1";
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host_part, ec);
  if (ec || !address.is_loopback()) {
    return "--url '" + url + "' names host '" + host_part +
           "'; stowage-load only loads a server on this machine's loopback" + hint;
  }
  *host = host_part;
  *port = static_cast<std::uint16_t>(port_value);
  return "";
}

std::string ParseMix(const std::string& mix, int* post_weight, int* get_weight) {
  int post = 0;
  int get = 0;
  std::size_t start = 0;
  while (start <= mix.size()) {
    auto comma = mix.find(',', start);
    std::string item = mix.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    auto equals = item.find('=');
    std::int64_t weight = 0;
    std::string kind = item.substr(0, equals);
    if (equals == std::string::npos || !ParseInt64(item.substr(equals + 1), &weight) || weight < 0 ||
        weight > 1000 || (kind != "post" && kind != "get")) {
      return "--mix item '" + item +
             "' is not post=W or get=W with W from 0 to 1000; e.g. --mix post=3,get=1";
    }
    (kind == "post" ? post : get) = static_cast<int>(weight);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (post + get == 0) return "--mix '" + mix + "' gives every kind weight 0; give one a weight above 0";
  *post_weight = post;
  *get_weight = get;
  return "";
}

std::variant<LoadOptions, std::vector<std::string>> ParseLoadOptions(const std::vector<std::string>& args) {
  LoadOptions options;
  std::vector<std::string> errors;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::string value;
    bool has_value = false;
    if (auto equals = name.find('='); name.rfind("--", 0) == 0 && equals != std::string::npos) {
      value = name.substr(equals + 1);
      name = name.substr(0, equals);
      has_value = true;
    }
    if (name == "--help" || name == "-h") {
      options.help = true;
      continue;
    }
    if (name == "--fail-on-error") {
      options.fail_on_error = true;
      continue;
    }
    static const char* kWithValue[] = {"--url",           "--connections",  "--duration", "--guests", "--mix",
                                       "--content-bytes", "--max-requests", "--timeout",  "--json"};
    bool known = false;
    for (const char* option : kWithValue) known = known || name == option;
    if (!known) {
      errors.push_back("unknown option '" + name + "'; see stowage-load --help");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        errors.push_back(name + " needs a value; see stowage-load --help");
        continue;
      }
      value = args[++i];
    }
    std::int64_t number = 0;
    if (name == "--url") {
      options.url = value;
      if (auto error = ParseLoopbackUrl(value, &options.host, &options.port); !error.empty()) {
        errors.push_back(error);
      }
    } else if (name == "--connections") {
      IntOption(name, value, 1, kMaxConnections, &number, &errors);
      if (number) options.connections = static_cast<int>(number);
    } else if (name == "--guests") {
      IntOption(name, value, 1, kMaxGuests, &number, &errors);
      if (number) options.guests = static_cast<int>(number);
    } else if (name == "--content-bytes") {
      IntOption(name, value, 1, kMaxContentBytes, &number, &errors);
      if (number) options.content_bytes = static_cast<int>(number);
    } else if (name == "--max-requests") {
      IntOption(name, value, 1, std::int64_t{1} << 40, &number, &errors);
      if (number) options.max_requests = number;
    } else if (name == "--duration" || name == "--timeout") {
      double seconds = 0;
      double high = name == "--duration" ? kMaxDurationS : 600;
      if (!ParseDouble(value, &seconds) || seconds <= 0 || seconds > high) {
        errors.push_back(name + " must be a number of seconds above 0 and at most " +
                         std::to_string(static_cast<int>(high)) + "; it is '" + value + "'");
      } else {
        (name == "--duration" ? options.duration_s : options.request_timeout_s) = seconds;
      }
    } else if (name == "--mix") {
      if (auto error = ParseMix(value, &options.post_weight, &options.get_weight); !error.empty()) {
        errors.push_back(error);
      }
    } else if (name == "--json") {
      if (value.empty()) errors.push_back("--json needs a file name");
      options.json_path = value;
    }
  }
  if (!errors.empty()) return errors;
  return options;
}

}  // namespace stowage::bench
