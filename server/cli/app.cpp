// The command line: parses flags and dispatches to the subcommands.
#include "server/cli/app.hpp"

#include "analysis/version.hpp"
#include "server/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

namespace mtlsguard::cli {
namespace {

void add_source_options(CLI::App& command, input::SnapshotSource& source,
                        std::optional<std::string>& version, const char* paths_flag,
                        const char* paths_help) {
    command.add_option(paths_flag, source.paths, paths_help)->required()->type_name("PATH");
    command.add_option(
        "--mesh-config", source.mesh_config_file,
        "MeshConfig YAML or the istio ConfigMap (beats an istio ConfigMap in the input)");
    command
        .add_option("--istio-version", version,
                    "Istio rules: 1.4, 1.5 or current (default: current, or 1.5 when v1alpha1 "
                    "objects are present)")
        ->check(CLI::IsMember({"1.4", "1.5", "current"}));
    command.add_option("--cluster-domain", source.cluster_domain, "cluster DNS suffix")
        ->capture_default_str();
}

void apply_version(input::SnapshotSource& source, const std::optional<std::string>& version) {
    if (version)
        source.version = model::parse_istio_version(*version);
}

Output parse_output(const std::string& text) {
    return text == "json" ? Output::Json : Output::Text;
}

} // namespace

int run(int argc, char** argv) noexcept {
    try {
        CLI::App app{"mtls-guard: catches Istio mTLS mismatches before they break traffic"};
        app.require_subcommand(1);
        app.set_version_flag("--version", std::string(version()));

        AnalyzeOptions analyze;
        std::optional<std::string> analyze_version;
        std::string analyze_output = "text";
        auto* analyze_cmd =
            app.add_subcommand("analyze", "report every mTLS conflict in a set of manifests");
        add_source_options(*analyze_cmd, analyze.source, analyze_version, "-f,--filename",
                           "file, directory (recursive) or - for stdin; repeatable");
        analyze_cmd->add_option("-o,--output", analyze_output, "text or json")
            ->check(CLI::IsMember({"text", "json"}));
        analyze_cmd
            ->add_option("--fail-on", analyze.fail_on,
                         "exit 1 on findings at or above: error, warning or never")
            ->check(CLI::IsMember({"error", "warning", "never"}))
            ->capture_default_str();

        MatrixOptions matrix;
        std::optional<std::string> matrix_version;
        std::string matrix_output = "text";
        auto* matrix_cmd = app.add_subcommand(
            "matrix", "what each client namespace sends and each server port accepts");
        add_source_options(*matrix_cmd, matrix.source, matrix_version, "-f,--filename",
                           "file, directory (recursive) or - for stdin; repeatable");
        matrix_cmd->add_option("--namespace", matrix.namespace_filter,
                               "only rows whose client or service is in this namespace");
        matrix_cmd->add_option("-o,--output", matrix_output, "text or json")
            ->check(CLI::IsMember({"text", "json"}));

        ReviewOptions review;
        std::optional<std::string> review_version;
        auto* review_cmd =
            app.add_subcommand("review", "print the admission response the webhook would send");
        add_source_options(*review_cmd, review.source, review_version, "--snapshot",
                           "the cluster as manifests: file, directory or -; repeatable");
        auto* object_opt =
            review_cmd->add_option("-f,--filename", review.object_file, "the object being applied");
        auto* request_opt = review_cmd->add_option("--request", review.request_file,
                                                   "an AdmissionReview JSON file");
        object_opt->excludes(request_opt);
        request_opt->excludes(object_opt);
        review_cmd
            ->add_option("--operation", review.operation, "CREATE, UPDATE or DELETE (with -f)")
            ->check(CLI::IsMember({"CREATE", "UPDATE", "DELETE"}));
        review_cmd->add_option("--mode", review.mode, "enforce or warn")
            ->check(CLI::IsMember({"enforce", "warn"}))
            ->capture_default_str();
        review_cmd->add_flag("--dry-run", review.dry_run, "mark the request as a dry run");

        try {
            app.parse(argc, argv);
        } catch (const CLI::ParseError& e) {
            const int code = app.exit(e); // prints help, version or the error
            return code == 0 ? 0 : 2;
        }

        if (analyze_cmd->parsed()) {
            apply_version(analyze.source, analyze_version);
            analyze.output = parse_output(analyze_output);
            return run_analyze(analyze);
        }
        if (matrix_cmd->parsed()) {
            apply_version(matrix.source, matrix_version);
            matrix.output = parse_output(matrix_output);
            return run_matrix(matrix);
        }
        if (review_cmd->parsed()) {
            if (review.object_file.empty() && review.request_file.empty()) {
                std::cerr << "mtls-guard review: give -f OBJECT_FILE or --request "
                             "ADMISSION_REVIEW_JSON\n";
                return 2;
            }
            apply_version(review.source, review_version);
            return run_review(review);
        }
        return 2;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "mtls-guard: %s\n", e.what());
        return 2;
    } catch (...) {
        std::fputs("mtls-guard: unexpected error\n", stderr);
        return 2;
    }
}

} // namespace mtlsguard::cli
