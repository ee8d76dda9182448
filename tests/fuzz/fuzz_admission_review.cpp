// Fuzz target: arbitrary bytes as a /validate body, decided on the demo mesh; never a crash or a
// 500.
#include "server/admission/review_endpoint.hpp"
#include "server/snapshot/snapshot_files.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

namespace {

std::shared_ptr<const mtlsguard::model::Snapshot> snapshot;

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    mtlsguard::input::SnapshotSource source;
    source.paths = {MTLS_GUARD_SOURCE_DIR "/deploy/demo/mesh.yaml"};
    snapshot = mtlsguard::input::load_snapshot(source).snapshot;
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    for (const auto mode :
         {mtlsguard::admission::Enforcement::Enforce, mtlsguard::admission::Enforcement::Warn}) {
        mtlsguard::admission::AdmissionSettings settings;
        settings.default_mode = mode;
        const auto reply = mtlsguard::server::handle_review(*snapshot, body, settings);
        // An internal error is a bug: the engine must answer every input with 200 or 4xx.
        if (reply.status != 200 && reply.status != 400) {
            std::fprintf(stderr, "unexpected status %d: %s\n", reply.status, reply.body.c_str());
            std::abort();
        }
        const auto parsed = nlohmann::json::parse(reply.body, nullptr, false);
        if (parsed.is_discarded())
            std::abort();
        if (reply.status == 200) {
            // The API server's limits on warnings hold on every answer.
            const auto& response = parsed.at("response");
            std::size_t total = 0;
            for (const auto& w : response.value("warnings", nlohmann::json::array())) {
                const auto text = w.get<std::string>();
                if (text.size() > 256 || text.find('\n') != std::string::npos)
                    std::abort();
                total += text.size();
            }
            if (total > 4096)
                std::abort();
        }
    }
    return 0;
}
