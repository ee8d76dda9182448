// The offline subcommands: options as parsed from the command line, and their entry points.
#pragma once

#include "server/snapshot/snapshot_files.hpp"

#include <optional>
#include <string>
#include <vector>

namespace mtlsguard::cli {

enum class Output : std::uint8_t { Text, Json, Sarif };

struct AnalyzeOptions {
    input::SnapshotSource source;
    Output output = Output::Text;
    std::string fail_on = "error"; // error | warning | never
};

struct MatrixOptions {
    input::SnapshotSource source;
    Output output = Output::Text;
    std::string namespace_filter;
};

// `explain`: the decision steps for the flows from one namespace (or workload) to one host.
struct ExplainOptions {
    input::SnapshotSource source;
    Output output = Output::Text;
    std::string from;     // --from NAMESPACE
    std::string to;       // --to HOST[:PORT]
    std::string workload; // --workload NS/NAME
};

// `report`: one self-contained HTML page with the findings and the client x service grid.
struct ReportOptions {
    input::SnapshotSource source;
    std::string output_file; // -o: a path, or - for stdout
    std::string namespace_filter;
    std::size_t max_explanations = 400; // cells whose explain text is embedded (docs/report.md)
};

struct ReviewOptions {
    input::SnapshotSource source; // --snapshot paths
    std::string object_file;      // -f
    std::string request_file;     // --request
    std::string operation;        // empty: UPDATE if the snapshot has the object, else CREATE
    std::string mode = "enforce";
    bool dry_run = false;
};

// `serve`: the HTTPS webhook. Timeouts are in seconds; 0 threads means the cores available.
struct ServeOptions {
    input::SnapshotSource source; // --snapshot paths, --mesh-config, --istio-version
    // Without --snapshot the cluster is read from the API server: --kubeconfig, or the in-cluster
    // service account when it is not given.
    std::optional<std::string> kubeconfig;
    std::string kube_context;                     // kubeconfig context; empty: the current one
    std::string istio_namespace = "istio-system"; // where the `istio` ConfigMap is read
    double stale_after_seconds = 60;              // a watch broken longer: verdicts warn
    std::string stale_policy = "enforce";         // enforce | warn: do errors deny while stale?
    double kube_request_timeout_seconds = 60;     // each step of an API request
    double kube_watch_timeout_seconds = 300; // watches last a random time in [this, twice this]
    std::string tls_cert;                    // empty with tls_key: generate a self-signed pair
    std::string tls_key;
    std::string client_ca;
    std::string cert_dir; // where generated certificates go; empty: a new temporary directory
    std::string listen = "0.0.0.0:8443";
    std::string metrics_listen; // empty: /metrics on the TLS port
    std::string mode = "enforce";
    std::string log_format = "text";
    std::uint64_t max_body_bytes = std::uint64_t{8} << 20;
    std::size_t max_connections = 256;
    unsigned threads = 0;
    double snapshot_poll_seconds = 5;
    double cert_poll_seconds = 10;
    double header_timeout_seconds = 10;
    double body_timeout_seconds = 30;
    // Longer than the API server's 90 s idle-connection timeout (client-go takes Go's
    // http.DefaultTransport IdleConnTimeout): the client then always closes an idle connection
    // first. Were the server to close first, a review sent as the close crossed it would fail, and
    // Go does not resend a POST.
    double idle_timeout_seconds = 120;
    double drain_timeout_seconds = 20;
    std::string port_file; // receives the bound port (and the metrics port on a second line)
};

// Each returns the process exit code: 0 ok, 1 findings at or above --fail-on / denied, 2 bad input.
int run_analyze(const AnalyzeOptions& options);
int run_matrix(const MatrixOptions& options);
int run_review(const ReviewOptions& options);
// 0 when explained, 2 on bad input (unknown namespace, host or workload, a malformed --to).
int run_explain(const ExplainOptions& options);
// 0 when the report is written (whatever the findings), 2 on bad input or when it cannot be.
int run_report(const ReportOptions& options);
// Serves until SIGTERM or SIGINT, then drains: 0 after a clean stop, 2 on bad usage or when the
// listen address cannot be used.
int run_serve(const ServeOptions& options);

// Prints the LoadError or notices of a snapshot load to stderr.
void print_notices(const std::vector<std::string>& notices);
// Loads the manifests, printing notices; on a LoadError prints it and returns nullopt (exit 2).
std::optional<input::LoadedSnapshot> load(const input::SnapshotSource& source);

} // namespace mtlsguard::cli
