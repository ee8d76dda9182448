// Fuzz target: arbitrary bytes as a manifest file, through loading, decoding, snapshot and
// analysis.
#include "analysis/analyze.hpp"
#include "server/input/manifest_loader.hpp"

#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    mtlsguard::input::LoadLimits limits;
    limits.max_nodes_per_document =
        100000; // keep each run small; the limit logic is what is tested
    limits.max_alias_nodes = 10000;
    std::vector<nlohmann::json> documents;
    try {
        documents = mtlsguard::input::parse_manifest_text(text, "fuzz.yaml", limits);
    } catch (const mtlsguard::input::LoadError&) {
        return 0; // refused with a reason: the expected outcome for bad input
    }
    mtlsguard::model::SnapshotBuilder builder;
    for (const auto& document : documents) {
        // Lists come back whole from parse_manifest_text; their items are objects to decode too.
        if (document.is_object() && document.contains("items") && document["items"].is_array()) {
            for (const auto& item : document["items"])
                (void)builder.add(item);
        } else {
            (void)builder.add(document);
        }
    }
    const auto snapshot = builder.build();
    const auto result = mtlsguard::analyze(*snapshot);
    if (!result.internal_error.empty())
        std::abort(); // the engine must never fail on decoded input
    const auto rows = mtlsguard::matrix(*snapshot);
    if (!rows.internal_error.empty())
        std::abort();
    return 0;
}
