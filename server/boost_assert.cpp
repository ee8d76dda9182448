// What a failed Boost assertion does in builds that keep assertions (Debug): report and abort,
// except for one assertion in Boost 1.74's Beast that is known to be wrong.
#include <boost/assert.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace {

// Beast's chunked parser asserts that at least five bytes are buffered when it resumes a final
// chunk, which holds only after a data chunk ("\r\n0\r\n"). A body that is nothing but the final
// chunk ("0\r\n\r\n", an empty watch) read in pieces resumes with three or four, and the code
// after the assertion handles that correctly (Release builds skip the check). Fixed upstream in
// Boost 1.86, boostorg/beast#2861, which weakens the check to `n >= 3` without the expected CRLF.
bool known_false(const char* expr, const char* file) {
    const std::string_view path(file);
    constexpr std::string_view parser = "boost/beast/http/impl/basic_parser.ipp";
    return path.size() >= parser.size() && path.substr(path.size() - parser.size()) == parser &&
           std::strcmp(expr, "n >= 5") == 0;
}

[[noreturn]] void fail(const char* expr, const char* msg, const char* function, const char* file,
                       long line) {
    std::fprintf(stderr, "%s:%ld: %s: Boost assertion `%s' failed%s%s\n", file, line, function,
                 expr, msg != nullptr ? ": " : ".", msg != nullptr ? msg : "");
    std::fflush(stderr);
    std::abort();
}

} // namespace

namespace boost {

void assertion_failed(const char* expr, const char* function, const char* file, long line) {
    if (!known_false(expr, file))
        fail(expr, nullptr, function, file, line);
}

void assertion_failed_msg(const char* expr, const char* msg, const char* function, const char* file,
                          long line) {
    if (!known_false(expr, file))
        fail(expr, msg, function, file, line);
}

} // namespace boost
