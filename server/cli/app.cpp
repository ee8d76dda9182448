// The command line: parses flags and dispatches to the subcommands.
#include "server/cli/app.hpp"

#include "analysis/version.hpp"
#include "server/cli/certs_command.hpp"
#include "server/cli/commands.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace mtlsguard::cli {
namespace {

constexpr const char* istio_version_help =
    "Istio rules: 1.N (1.4 to 1.29: the newest patch of 1.N), 1.N.P, or current (1.29; default: "
    "current, or 1.5 when v1alpha1 objects are present)";

CLI::Validator istio_version_validator() {
    return CLI::Validator(
        [](const std::string& text) -> std::string {
            if (model::parse_istio_version(text))
                return {};
            return "unsupported Istio version \"" + text +
                   "\": expected 1.4 to 1.29 (1.N or 1.N.P) or current";
        },
        "1.N[.P]|current");
}

void add_source_options(CLI::App& command, input::SnapshotSource& source,
                        std::optional<std::string>& version, const char* paths_flag,
                        const char* paths_help) {
    command.add_option(paths_flag, source.paths, paths_help)->required()->type_name("PATH");
    command.add_option(
        "--mesh-config", source.mesh_config_file,
        "MeshConfig YAML or the istio ConfigMap (beats an istio ConfigMap in the input)");
    command.add_option("--istio-version", version, istio_version_help)
        ->check(istio_version_validator());
    command.add_option("--cluster-domain", source.cluster_domain, "cluster DNS suffix")
        ->capture_default_str();
    command.add_flag("--strict", source.strict,
                     "refuse (exit 2) YAML documents that are not Kubernetes objects (no "
                     "apiVersion or kind) instead of skipping them with a note");
}

// analyze, matrix, explain and report: a subcommand reading its manifests from -f.
CLI::App* add_manifest_command(CLI::App& app, const char* name, const char* description,
                               input::SnapshotSource& source, std::optional<std::string>& version) {
    auto* command = app.add_subcommand(name, description);
    add_source_options(*command, source, version, "-f,--filename",
                       "file, directory (recursive) or - for stdin; repeatable");
    return command;
}

// -o for the commands that print a report in one of `formats`.
void add_output_option(CLI::App& command, std::string& output, const char* help,
                       const std::vector<std::string>& formats) {
    command.add_option("-o,--output", output, help)->check(CLI::IsMember(formats));
}

void apply_version(input::SnapshotSource& source, const std::optional<std::string>& version) {
    if (version)
        source.version = model::parse_istio_version(*version);
}

// serve's flags: the cluster comes from --snapshot files, or from the Kubernetes API without them.
void add_serve_options(CLI::App& command, ServeOptions& serve,
                       std::optional<std::string>& version) {
    command
        .add_option("--snapshot", serve.source.paths,
                    "the cluster as manifests: file or directory (recursive), repeatable; "
                    "reloaded when the files change. Without it the cluster is read from the "
                    "Kubernetes API")
        ->type_name("PATH");
    command.add_option("--kubeconfig", serve.kubeconfig,
                       "read the cluster through this kubeconfig (its current context); without "
                       "it and without --snapshot, the in-cluster service account is used");
    command.add_option("--kube-context", serve.kube_context,
                       "the kubeconfig context to use instead of its current one");
    command
        .add_option("--istio-namespace", serve.istio_namespace,
                    "where Istio's `istio` ConfigMap (the mesh config) is read from the cluster")
        ->capture_default_str();
    command
        .add_option("--stale-after-seconds", serve.stale_after_seconds,
                    "when a watch of the API server has failed this long, every verdict warns "
                    "that the snapshot may be stale")
        ->check(CLI::Range(1.0, 86400.0))
        ->capture_default_str();
    command
        .add_option("--stale-policy", serve.stale_policy,
                    "while the snapshot is stale: enforce (deny from the last good snapshot, "
                    "with the warning) or warn (never deny until the watches recover)")
        ->check(CLI::IsMember({"enforce", "warn"}))
        ->capture_default_str();
    command
        .add_option("--kube-request-timeout-seconds", serve.kube_request_timeout_seconds,
                    "time for each step of an API request (connect, TLS, a list page); a watch "
                    "silent past its own timeout by this much (at most 30 s) is reopened")
        ->check(CLI::Range(0.1, 3600.0))
        ->capture_default_str();
    command
        .add_option("--kube-watch-timeout-seconds", serve.kube_watch_timeout_seconds,
                    "each watch asks the API server to end it after a random time between this "
                    "and twice this")
        ->check(CLI::Range(1.0, 3600.0))
        ->capture_default_str();
    command.add_option("--mesh-config", serve.source.mesh_config_file,
                       "MeshConfig YAML or the istio ConfigMap (beats an istio ConfigMap in the "
                       "snapshot)");
    command.add_option("--istio-version", version, istio_version_help)
        ->check(istio_version_validator());
    command.add_option("--cluster-domain", serve.source.cluster_domain, "cluster DNS suffix")
        ->capture_default_str();
    auto* cert = command.add_option("--tls-cert", serve.tls_cert,
                                    "serving certificate chain (PEM); reloaded when it changes; "
                                    "without it a self-signed pair is generated");
    auto* key = command.add_option("--tls-key", serve.tls_key, "private key of --tls-cert (PEM)");
    cert->needs(key);
    key->needs(cert);
    command.add_option("--client-ca", serve.client_ca,
                       "require a client certificate signed by this CA (PEM)");
    command.add_option("--cert-dir", serve.cert_dir,
                       "where a generated certificate goes (default: a new temporary directory)");
    command.add_option("--listen", serve.listen, "HTTPS address, ADDR:PORT (port 0: any)")
        ->capture_default_str();
    command.add_option("--metrics-listen", serve.metrics_listen,
                       "plain-HTTP address for /metrics (and the probes); without it /metrics "
                       "is served on the HTTPS port");
    command.add_option("--mode", serve.mode, "enforce or warn (a namespace label overrides it)")
        ->check(CLI::IsMember({"enforce", "warn"}))
        ->capture_default_str();
    command.add_option("--log-format", serve.log_format, "text or json (one object per line)")
        ->check(CLI::IsMember({"text", "json"}))
        ->capture_default_str();
    command
        .add_option("--max-body-bytes", serve.max_body_bytes, "largest request body (413 above)")
        ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 30))
        ->capture_default_str();
    command
        .add_option("--max-connections", serve.max_connections,
                    "open connections at most; more are closed at once")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20))
        ->capture_default_str();
    command.add_option("--threads", serve.threads, "I/O threads (default: the cores available)")
        ->check(CLI::Range(0U, 1024U));
    command
        .add_option("--snapshot-poll-seconds", serve.snapshot_poll_seconds,
                    "how often the snapshot files are checked for changes")
        ->check(CLI::Range(0.05, 86400.0))
        ->capture_default_str();
    command
        .add_option("--cert-poll-seconds", serve.cert_poll_seconds,
                    "how often the certificate files are checked for changes")
        ->check(CLI::Range(0.05, 86400.0))
        ->capture_default_str();
    command
        .add_option("--header-timeout-seconds", serve.header_timeout_seconds,
                    "time for the TLS handshake, and for a request header once it has started")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    command
        .add_option("--body-timeout-seconds", serve.body_timeout_seconds, "time for a request body")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    command
        .add_option("--idle-timeout-seconds", serve.idle_timeout_seconds,
                    "how long a kept-alive connection may wait for its next request")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    command
        .add_option("--drain-timeout-seconds", serve.drain_timeout_seconds,
                    "on SIGTERM, how long requests in flight may take to finish")
        ->check(CLI::Range(0.0, 3600.0))
        ->capture_default_str();
    command.add_option("--port-file", serve.port_file,
                       "write the bound HTTPS port (and the metrics port on a second line) here "
                       "once serving");
}

Output parse_output(const std::string& text) {
    return text == "json" ? Output::Json : text == "sarif" ? Output::Sarif : Output::Text;
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
            add_manifest_command(app, "analyze", "report every mTLS conflict in a set of manifests",
                                 analyze.source, analyze_version);
        add_output_option(*analyze_cmd, analyze_output,
                          "text, json, or sarif (SARIF 2.1.0 for code scanning: each finding at "
                          "the file and line of its object)",
                          {"text", "json", "sarif"});
        analyze_cmd
            ->add_option("--fail-on", analyze.fail_on,
                         "exit 1 on findings at or above: error, warning or never")
            ->check(CLI::IsMember({"error", "warning", "never"}))
            ->capture_default_str();

        MatrixOptions matrix;
        std::optional<std::string> matrix_version;
        std::string matrix_output = "text";
        auto* matrix_cmd = add_manifest_command(
            app, "matrix", "what each client namespace sends and each server port accepts",
            matrix.source, matrix_version);
        matrix_cmd->add_option("--namespace", matrix.namespace_filter,
                               "only rows whose client or service is in this namespace");
        add_output_option(*matrix_cmd, matrix_output, "text or json", {"text", "json"});

        ExplainOptions explain;
        std::optional<std::string> explain_version;
        std::string explain_output = "text";
        auto* explain_cmd = add_manifest_command(
            app, "explain", "every step of the decision for the flows from a namespace to a host",
            explain.source, explain_version);
        explain_cmd
            ->add_option("--from", explain.from,
                         "the client namespace, or kube-apiserver for the API server's calls to "
                         "webhooks, APIServices and conversion webhooks")
            ->required()
            ->type_name("NAMESPACE");
        explain_cmd
            ->add_option("--to", explain.to,
                         "the destination: a Service host (a short name resolves in --from) or a "
                         "ServiceEntry host, with :PORT for one service port (default: all TCP "
                         "ports)")
            ->required()
            ->type_name("HOST[:PORT]");
        explain_cmd
            ->add_option("--workload", explain.workload,
                         "only the client workload NS/NAME (a Deployment, StatefulSet, ... name)")
            ->type_name("NS/NAME");
        add_output_option(*explain_cmd, explain_output, "text or json", {"text", "json"});

        ReportOptions report;
        std::optional<std::string> report_version;
        auto* report_cmd = add_manifest_command(
            app, "report",
            "one self-contained HTML page: summary, findings and the client namespace x service "
            "grid, each cell opening its explanation",
            report.source, report_version);
        report_cmd->add_option("-o,--output", report.output_file, "the HTML file to write, or -")
            ->required()
            ->type_name("FILE");
        report_cmd->add_option("--namespace", report.namespace_filter,
                               "only grid cells whose client or service is in this namespace");
        report_cmd
            ->add_option("--max-explanations", report.max_explanations,
                         "embed the explanation of every cell up to this many cells; beyond, "
                         "only of FAIL and DEPENDS cells, at most this many")
            ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 20))
            ->capture_default_str();

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

        ServeOptions serve;
        std::optional<std::string> serve_version;
        auto* serve_cmd = app.add_subcommand(
            "serve", "the HTTPS admission webhook: POST /validate, /healthz, /readyz, /metrics");
        add_serve_options(*serve_cmd, serve, serve_version);

        CertsOptions certs;
        auto* certs_cmd = add_certs_command(app, certs);

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
        if (explain_cmd->parsed()) {
            apply_version(explain.source, explain_version);
            explain.output = parse_output(explain_output);
            return run_explain(explain);
        }
        if (report_cmd->parsed()) {
            apply_version(report.source, report_version);
            return run_report(report);
        }
        if (serve_cmd->parsed()) {
            apply_version(serve.source, serve_version);
            return run_serve(serve);
        }
        if (certs_cmd->parsed())
            return run_certs(certs);
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
