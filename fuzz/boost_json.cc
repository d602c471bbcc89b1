// Boost.JSON compiled into the fuzz targets that parse JSON, with their
// flags, so that libFuzzer sees the parser's branches too (the build's
// Boost::json library is not instrumented).
#include <boost/json/src.hpp>
