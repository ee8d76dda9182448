// `mtls-guard explain`: every step of the decision for the flows from one namespace to one host.
#include "analysis/report/explain.hpp"
#include "server/cli/commands.hpp"

#include <iostream>

namespace mtlsguard::cli {

int run_explain(const ExplainOptions& options) {
    const auto target = report::parse_host_port(options.to);
    if (!target) {
        std::cerr << "mtls-guard explain: malformed --to \"" << options.to
                  << "\": expected HOST or HOST:PORT with PORT 1 to 65535\n";
        return 2;
    }
    const auto loaded = load(options.source);
    if (!loaded)
        return 2;
    const report::ExplainRequest request{options.from, target->host, target->port,
                                         options.workload};
    const auto result = report::explain(*loaded->snapshot, request);
    if (!result.internal_error.empty()) {
        std::cerr << "mtls-guard: internal error: " << result.internal_error << "\n";
        return 2;
    }
    if (!result.error.empty()) {
        std::cerr << "mtls-guard explain: " << result.error << "\n";
        return 2;
    }
    if (options.output == Output::Json)
        std::cout << report::explain_json(result).dump(2, ' ', false,
                                                       nlohmann::json::error_handler_t::replace)
                  << "\n";
    else
        std::cout << report::explain_text(result);
    return 0;
}

} // namespace mtlsguard::cli
