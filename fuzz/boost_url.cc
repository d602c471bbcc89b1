// Boost.URL compiled into the fuzz targets that read URLs, with their flags,
// so that libFuzzer sees the parser's branches too (the build's Boost::url
// library is not instrumented).
#include <boost/url/src.hpp>
