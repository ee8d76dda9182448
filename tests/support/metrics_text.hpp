// Reading one sample out of Prometheus's text exposition, for tests that scrape /metrics.
#pragma once

#include <sstream>
#include <string>

namespace mtlsguard::testing {

// The value of the sample line of `series` (a name, with its labels if any), or -1 when absent.
inline double sample(const std::string& metrics, const std::string& series) {
    std::istringstream in(metrics);
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(series + " ", 0) == 0)
            return std::stod(line.substr(series.size() + 1));
    return -1;
}

} // namespace mtlsguard::testing
