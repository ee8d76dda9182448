// End-to-end tests of `mtls-guard serve`: the real binary on a loopback port, spoken to over TLS
// by a Beast client that verifies the generated CA. Every wait is bounded; the process is always
// killed at the end.
#include "tests/server/https/support/serve_harness.hpp"

using namespace mtlsguard::serve_testing;

namespace {

// ---------------------------------------------------------------------------------------------
// Requests

json dr_full_mtls() {
    return {{"apiVersion", "networking.istio.io/v1alpha3"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", "httpbin-full-mtls"}, {"namespace", "full"}}},
            {"spec",
             {{"host", "httpbin.full.svc.cluster.local"},
              {"trafficPolicy", {{"tls", {{"mode", "ISTIO_MUTUAL"}}}}}}}};
}

json dr_legacy_plain() {
    return {{"apiVersion", "networking.istio.io/v1alpha3"},
            {"kind", "DestinationRule"},
            {"metadata", {{"name", "httpbin-legacy-plain"}, {"namespace", "legacy"}}},
            {"spec",
             {{"host", "httpbin.legacy.svc.cluster.local"},
              {"trafficPolicy", {{"tls", {{"mode", "DISABLE"}}}}}}}};
}

json policy_strict() {
    return {
        {"apiVersion", "authentication.istio.io/v1alpha1"},
        {"kind", "Policy"},
        {"metadata", {{"name", "httpbin"}, {"namespace", "full"}}},
        {"spec", {{"targets", {{{"name", "httpbin"}}}}, {"peers", {{{"mtls", json::object()}}}}}}};
}

// The server still answers a fresh client: what every bad-input case must leave intact.
void check_still_serving(const Serve& serve) {
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    const Reply reply =
        client.exchange(post(admission_review("still", dr_legacy_plain(), "CREATE").dump()));
    const json response = response_of(reply, "still");
    CHECK(response.at("allowed") == true);
}

std::string fingerprint_of_file(const fs::path& pem) {
    FILE* file = std::fopen(pem.c_str(), "r");
    REQUIRE(file);
    X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
    std::fclose(file);
    REQUIRE(cert);
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int size = 0;
    X509_digest(cert, EVP_sha256(), md.data(), &size);
    X509_free(cert);
    return std::string(md.begin(), md.begin() + size);
}

} // namespace

// =============================================================================================

TEST_CASE("serve gives the verdicts of the engine over TLS: allowed, denied, warned, dryRun") {
    Serve serve;
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());

    SECTION("a DestinationRule that breaks nothing is allowed without warnings") {
        const json response = response_of(
            client.exchange(post(admission_review("a-1", dr_legacy_plain(), "CREATE").dump())),
            "a-1");
        CHECK(response.at("allowed") == true);
        CHECK_FALSE(response.contains("warnings"));
    }
    SECTION("ISTIO_MUTUAL onto a plaintext-only workload is denied with 403 and MTG102") {
        const json response = response_of(
            client.exchange(post(admission_review("d-1", dr_full_mtls(), "CREATE").dump())), "d-1");
        CHECK(response.at("allowed") == false);
        CHECK(response.at("status").at("code") == 403);
        CHECK_THAT(response.at("status").at("message").get<std::string>(),
                   Catch::Contains("MTG102"));
    }
    SECTION("STRICT with sidecar-less clients is allowed with an MTG203 warning") {
        const json response = response_of(
            client.exchange(post(admission_review("w-1", policy_strict(), "UPDATE").dump())),
            "w-1");
        CHECK(response.at("allowed") == true);
        CHECK(any_warning_has(response, "[MTG203]"));
    }
    SECTION("dryRun gets exactly the verdict of the real request") {
        const json real = response_of(
            client.exchange(post(admission_review("r-1", dr_full_mtls(), "CREATE").dump())), "r-1");
        const json dry = response_of(
            client.exchange(post(admission_review("r-1", dr_full_mtls(), "CREATE", true).dump())),
            "r-1");
        CHECK(dry == real);
        CHECK(dry.at("allowed") == false);
    }
    SECTION("v1beta1 is answered in kind") {
        const Reply reply = client.exchange(post(
            admission_review("b-1", dr_full_mtls(), "CREATE", false, "admission.k8s.io/v1beta1")
                .dump()));
        CHECK(body_json(reply).at("apiVersion") == "admission.k8s.io/v1beta1");
        CHECK(response_of(reply, "b-1").at("allowed") == false);
    }
    SECTION("the body is byte for byte what `mtls-guard review` prints for the same review") {
        const std::string body = admission_review("same-1", policy_strict(), "UPDATE").dump();
        write_text(serve.dir.path() / "review.json", body);
        const Reply reply = client.exchange(post(body));
        std::vector<std::string> args = {"review", "--request",
                                         (serve.dir.path() / "review.json").string()};
        const auto s = snapshot_args();
        args.insert(args.end(), s.begin(), s.end());
        ChildProcess review(args, serve.dir.path());
        REQUIRE(review.wait_exit(20s) == 0);
        CHECK(reply.body + "\n" == review.out());
    }
}

TEST_CASE("serve applies the ambient rules of the Istio version it is told (ambient.md §12)") {
    // A sidecar client's DestinationRule ISTIO_MUTUAL towards a STRICT ambient namespace: HBONE
    // from 1.25.1 (allowed), legacy mTLS that ztunnel rejects on 1.24 (denied, MTG106).
    const fs::path scenario = fixtures / "ambient-54-dr-istio-mutual-to-ambient";
    const json rule = {{"apiVersion", "networking.istio.io/v1"},
                       {"kind", "DestinationRule"},
                       {"metadata", {{"name", "bank-mtls"}, {"namespace", "web"}}},
                       {"spec",
                        {{"host", "ledger.bank.svc.cluster.local"},
                         {"trafficPolicy", {{"tls", {{"mode", "ISTIO_MUTUAL"}}}}}}}};
    auto [version, allowed] =
        GENERATE(table<std::string, bool>({{"current", true}, {"1.24", false}}));
    INFO("--istio-version " << version);
    Serve serve(
        {{"--snapshot", (scenario / "workloads.yaml").string(), "--snapshot",
          (scenario / "peerauthentication-bank-strict.yaml").string(), "--istio-version", version},
         false});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    const json response = response_of(
        client.exchange(post(admission_review("amb-1", rule, "CREATE").dump())), "amb-1");
    CHECK(response.at("allowed") == allowed);
    if (!allowed)
        CHECK_THAT(response.at("status").at("message").get<std::string>(),
                   Catch::Contains("MTG106"));
}

TEST_CASE("serve judges Namespace label changes (ambient.md §17): enrolment denied, other labels "
          "allowed") {
    // bank's ledger-0 sits behind a headless Service under STRICT: captured at once, the sidecar
    // clients' plaintext fails (MTG106).
    const fs::path scenario = fixtures / "namespace-17-enrol-ambient-denied";
    Serve serve({{"--snapshot", (scenario / "workloads.yaml").string()}, false});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    auto namespace_review = [](const std::string& uid, const std::string& key,
                               const std::string& value) {
        // The API server names a Namespace in request.namespace too; the object has no namespace.
        json review = admission_review(
            uid,
            {{"apiVersion", "v1"},
             {"kind", "Namespace"},
             {"metadata", {{"name", "bank"}, {"namespace", "bank"}, {"labels", {{key, value}}}}}},
            "UPDATE");
        review["request"]["object"]["metadata"].erase("namespace");
        return review;
    };
    const json denied =
        response_of(client.exchange(post(
                        namespace_review("ns-1", "istio.io/dataplane-mode", "ambient").dump())),
                    "ns-1");
    CHECK(denied.at("allowed") == false);
    CHECK(denied.at("status").at("code") == 403);
    CHECK_THAT(denied.at("status").at("message").get<std::string>(), Catch::Contains("MTG106"));
    const json allowed = response_of(
        client.exchange(post(namespace_review("ns-2", "team", "payments").dump())), "ns-2");
    CHECK(allowed.at("allowed") == true);
    CHECK_FALSE(allowed.contains("warnings"));
}

TEST_CASE("warn mode turns the denial into warnings") {
    Serve serve({{"--mode", "warn"}});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    const json response = response_of(
        client.exchange(post(admission_review("wm-1", dr_full_mtls(), "CREATE").dump())), "wm-1");
    CHECK(response.at("allowed") == true);
    CHECK(any_warning_has(response, "[MTG102]"));
}

TEST_CASE("Many requests share one kept-alive connection") {
    Serve serve;
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    const std::string allowed = admission_review("k", dr_legacy_plain(), "CREATE").dump();
    const std::string denied = admission_review("k", dr_full_mtls(), "CREATE").dump();
    for (int i = 0; i < 200; ++i) {
        const Reply reply = client.exchange(post(i % 2 == 0 ? allowed : denied));
        REQUIRE(reply.keep_alive);
        const json response = response_of(reply, "k");
        REQUIRE(response.at("allowed") == (i % 2 == 0));
    }
    // Probes on the same connection too.
    CHECK(client.exchange(get("/healthz")).status == 200);
    CHECK(client.exchange(get("/readyz")).status == 200);
    const std::string metrics = client.exchange(get("/metrics")).body;
    CHECK(
        sample(
            metrics,
            R"(mtls_guard_admission_requests_total{decision="deny",dry_run="false",kind="DestinationRule",operation="CREATE"})") ==
        100);
    CHECK(
        sample(
            metrics,
            R"(mtls_guard_admission_requests_total{decision="allow",dry_run="false",kind="DestinationRule",operation="CREATE"})") ==
        100);
    // Each denial counts under the code of the error it introduces (ISTIO_MUTUAL to DISABLE).
    CHECK(sample(metrics, R"(mtls_guard_admission_denials_total{code="MTG102"})") == 100);
    CHECK(sample(metrics, "mtls_guard_admission_decision_seconds_count") == 200);
}

TEST_CASE("Concurrent connections are all served") {
    Serve serve;
    constexpr int threads = 8;
    constexpr int per_thread = 25;
    std::atomic<int> ok{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t)
        workers.emplace_back([&, t] {
            TlsClient client(serve.port, {{serve.ca()}});
            // Half the workers keep one connection, the other half reconnect every request.
            const bool reconnect = t % 2 == 1;
            if (!reconnect && client.connect()) {
                failed += per_thread;
                return;
            }
            for (int i = 0; i < per_thread; ++i) {
                const std::string uid = "c-" + std::to_string(t) + "-" + std::to_string(i);
                if (reconnect && client.connect()) {
                    ++failed;
                    continue;
                }
                Reply reply;
                if (client.send(post(admission_review(uid, dr_full_mtls(), "CREATE").dump())) ||
                    client.read(reply) || reply.status != 200) {
                    ++failed;
                    continue;
                }
                const json body = body_json(reply);
                if (body.is_object() && body["response"]["uid"] == uid &&
                    body["response"]["allowed"] == false)
                    ++ok;
                else
                    ++failed;
            }
        });
    for (auto& w : workers)
        w.join();
    CHECK(failed == 0);
    CHECK(ok == threads * per_thread);
}

TEST_CASE("Bad requests get a short JSON error and the server keeps serving others") {
    Serve serve;
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());

    SECTION("a body that is not JSON: 400") {
        const Reply reply = client.exchange(post("{not json"));
        CHECK(reply.status == 400);
        CHECK(body_json(reply).at("error").is_string());
        CHECK(reply.keep_alive); // a complete request: the connection stays usable
        CHECK(response_of(client.exchange(
                              post(admission_review("after", dr_legacy_plain(), "CREATE").dump())),
                          "after")
                  .at("allowed") == true);
    }
    SECTION("a Content-Type other than application/json: 415, then the connection closes") {
        const Reply reply = client.exchange(post(
            admission_review("x", dr_legacy_plain(), "CREATE").dump(), "/validate", "text/plain"));
        CHECK(reply.status == 415);
        CHECK(body_json(reply).at("error").is_string());
        CHECK_FALSE(reply.keep_alive);
        CHECK(is_closed(client.wait_closed(3s)));
    }
    SECTION("no Content-Type at all: 415") {
        CHECK(client.exchange(post("{}", "/validate", "")).status == 415);
    }
    SECTION("application/json with a charset is accepted") {
        const Reply reply =
            client.exchange(post(admission_review("cs", dr_legacy_plain(), "CREATE").dump(),
                                 "/validate", "application/json; charset=utf-8"));
        CHECK(response_of(reply, "cs").at("allowed") == true);
    }
    SECTION("a body over the limit: 413 on the header alone, then the connection closes") {
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Content-Length: 9437184\r\n\r\n" +
                                       std::string(65536, ' ')));
        Reply reply;
        REQUIRE_FALSE(client.read(reply));
        CHECK(reply.status == 413);
        CHECK_THAT(body_json(reply).at("error").get<std::string>(), Catch::Contains("8388608"));
        CHECK(is_closed(client.wait_closed(5s)));
    }
    SECTION("a request header over 16 KiB: 431") {
        REQUIRE_FALSE(client.write_raw("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: " +
                                       std::string(20000, 'a') + "\r\n\r\n"));
        Reply reply;
        REQUIRE_FALSE(client.read(reply));
        CHECK(reply.status == 431);
        CHECK(is_closed(client.wait_closed(5s)));
    }
    SECTION("malformed HTTP: 400, then the connection closes") {
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                       "Content-Length: abc\r\n\r\n"));
        Reply reply;
        REQUIRE_FALSE(client.read(reply));
        CHECK(reply.status == 400);
        CHECK(is_closed(client.wait_closed(5s)));
    }
    SECTION("a truncated body, then the client goes away: nothing breaks") {
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Content-Length: 1000\r\n\r\n{\"apiVersion\":"));
        client.close();
    }
    SECTION("a client that stalls in the body is cut after the body timeout") {
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                       "Content-Type: application/json\r\n"
                                       "Content-Length: 1000\r\n\r\n{\"apiVersion\":"));
        const auto started = Clock::now();
        check_still_serving(serve); // others are served meanwhile
        CHECK(is_closed(client.wait_closed(5s)));
        CHECK(Clock::now() - started < 4s);
    }
    SECTION("a client that stalls in the header is cut after the header timeout") {
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: local"));
        const auto started = Clock::now();
        check_still_serving(serve);
        CHECK(is_closed(client.wait_closed(5s)));
        CHECK(Clock::now() - started < 4s);
    }
    SECTION("a client that connects and never speaks TLS is cut after the handshake timeout") {
        PlainClient silent(serve.port);
        REQUIRE_FALSE(silent.connect());
        const auto started = Clock::now();
        check_still_serving(serve);
        const auto [received, ec] = silent.read_until_closed(5s);
        CHECK(received.empty());
        CHECK(ec != beast::error::timeout);
        CHECK(Clock::now() - started < 4s);
    }
    SECTION("plain HTTP on the TLS port gets a plain 400 and is closed") {
        PlainClient plain(serve.port);
        REQUIRE_FALSE(plain.connect());
        REQUIRE_FALSE(plain.write_raw("GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"));
        const auto [received, ec] = plain.read_until_closed(5s);
        CHECK(ec != beast::error::timeout);
        CHECK_THAT(received, Catch::StartsWith("HTTP/1.1 400 Bad Request"));
        CHECK_THAT(received, Catch::Contains("Connection: close"));
        CHECK_THAT(received, Catch::Contains(R"({"error":"this port speaks HTTPS"})"));
    }
    SECTION("a TLS 1.0 client is refused with a protocol_version alert") {
        ClientOptions old;
        old.trusted = {serve.ca()};
        old.tls10_only = true;
        TlsClient legacy(serve.port, old);
        const error_code ec = legacy.connect();
        REQUIRE(ec);
        INFO(ec.message());
        // The alert came from the server: the client did offer TLS 1.0.
        CHECK(ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
              SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
    }
    SECTION("an unknown path: 404") {
        const Reply reply = client.exchange(get("/nope"));
        CHECK(reply.status == 404);
        CHECK(body_json(reply).at("error").is_string());
        CHECK(reply.keep_alive);
    }
    SECTION("the wrong method: 405 with Allow") {
        const Reply on_validate = client.exchange(get("/validate"));
        CHECK(on_validate.status == 405);
        CHECK(on_validate.allow == "POST");
        http::request<http::string_body> put{http::verb::put, "/healthz", 11};
        put.set(http::field::host, "localhost");
        const Reply on_healthz = client.exchange(put);
        CHECK(on_healthz.status == 405);
        CHECK(on_healthz.allow == "GET");
        CHECK(body_json(on_healthz).at("error").is_string());
    }
    SECTION("an AdmissionReview without a uid, or without a request: 400") {
        json no_uid = admission_review("", dr_full_mtls(), "CREATE");
        no_uid["request"].erase("uid");
        const Reply a = client.exchange(post(no_uid.dump()));
        CHECK(a.status == 400);
        CHECK_THAT(body_json(a).at("error").get<std::string>(), Catch::Contains("uid"));
        const Reply b = client.exchange(
            post(R"({"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"})"));
        CHECK(b.status == 400);
        CHECK(body_json(b).at("error").is_string());
    }
    SECTION("Expect: 100-continue gets 100 before the body is sent") {
        const std::string body = admission_review("ex", dr_legacy_plain(), "CREATE").dump();
        REQUIRE_FALSE(client.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                       "Content-Type: application/json\r\nExpect: 100-continue\r\n"
                                       "Content-Length: " +
                                       std::to_string(body.size()) + "\r\n\r\n"));
        Reply interim;
        REQUIRE_FALSE(client.read(interim));
        CHECK(interim.status == 100);
        REQUIRE_FALSE(client.write_raw(body));
        Reply final_reply;
        REQUIRE_FALSE(client.read(final_reply));
        CHECK(response_of(final_reply, "ex").at("allowed") == true);
    }
    check_still_serving(serve);
    CHECK(serve.process->running());
}

TEST_CASE("A small body limit applies to chunked bodies too") {
    Serve serve({{"--max-body-bytes", "1024"}});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    std::string chunked = "POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                          "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 4; ++i)
        chunked += "200\r\n" + std::string(512, ' ') + "\r\n";
    chunked += "0\r\n\r\n";
    REQUIRE_FALSE(client.write_raw(chunked));
    Reply reply;
    REQUIRE_FALSE(client.read(reply));
    CHECK(reply.status == 413);
    CHECK(is_closed(client.wait_closed(5s)));
    check_still_serving(serve);
}

TEST_CASE("Probes and metrics tell what the server did") {
    Serve serve;
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    const Reply healthz = client.exchange(get("/healthz"));
    CHECK(healthz.status == 200);
    CHECK(body_json(healthz).at("status") == "ok");
    CHECK(eventually([&] { return client.exchange(get("/readyz")).status == 200; }, 5s));

    client.exchange(post(admission_review("m1", dr_full_mtls(), "CREATE", true).dump()));
    client.exchange(post(admission_review("m2", policy_strict(), "UPDATE").dump()));
    client.exchange(post(admission_review("m3", dr_legacy_plain(), "CREATE").dump()));
    client.exchange(post("oops"));
    client.exchange(get("/nope"));

    const Reply reply = client.exchange(get("/metrics"));
    CHECK(reply.status == 200);
    CHECK_THAT(reply.content_type, Catch::StartsWith("text/plain; version=0.0.4"));
    const std::string& m = reply.body;
    CHECK(
        sample(
            m,
            R"(mtls_guard_admission_requests_total{decision="deny",dry_run="true",kind="DestinationRule",operation="CREATE"})") ==
        1);
    CHECK(
        sample(
            m,
            R"(mtls_guard_admission_requests_total{decision="warn",dry_run="false",kind="Policy",operation="UPDATE"})") ==
        1);
    CHECK(
        sample(
            m,
            R"(mtls_guard_admission_requests_total{decision="allow",dry_run="false",kind="DestinationRule",operation="CREATE"})") ==
        1);
    CHECK(
        sample(
            m,
            R"(mtls_guard_admission_requests_total{decision="error",dry_run="false",kind="unknown",operation="unknown"})") ==
        1);
    CHECK(sample(m, "mtls_guard_admission_decision_seconds_count") == 4);
    CHECK(sample(m, R"(mtls_guard_admission_decision_seconds_bucket{le="+Inf"})") == 4);
    CHECK(sample(m, R"(mtls_guard_http_errors_total{status="400"})") == 1);
    CHECK(sample(m, R"(mtls_guard_http_errors_total{status="404"})") == 1);
    CHECK(sample(m, R"(mtls_guard_snapshot_objects{kind="Namespace"})") == 4);
    CHECK(sample(m, R"(mtls_guard_istio_rules_info{version="1.5"})") == 1);
    CHECK(sample(m, R"(mtls_guard_snapshot_reloads_total{result="success"})") == 1);
    CHECK(sample(m, "mtls_guard_snapshot_age_seconds") >= 0);
    CHECK(sample(m, R"(mtls_guard_findings{code="MTG208",severity="info"})") == 2);
    CHECK(sample(m, R"(mtls_guard_findings{code="MTG102",severity="error"})") == 0);
    CHECK(sample(m, R"(mtls_guard_tls_reloads_total{result="success"})") == 0);
    CHECK(sample(m, "mtls_guard_connections_rejected_total") == 0);
}

TEST_CASE("The snapshot is reloaded when its files change, and a broken edit keeps the last one") {
    TempDir cluster;
    fs::copy(fixtures / "walkthrough-base", cluster.path() / "base", fs::copy_options::recursive);
    fs::copy_file(fixtures / "walkthrough-3-plaintext" / "policy-plaintext.yaml",
                  cluster.path() / "base" / "policy.yaml");
    Serve serve(
        {{"--snapshot", (cluster.path() / "base").string(), "--istio-version", "1.5"}, false});
    const auto findings_102 = [&] {
        return sample(scrape(serve.port, serve.ca()),
                      R"(mtls_guard_findings{code="MTG102",severity="error"})");
    };
    REQUIRE(eventually([&] { return findings_102() == 0; }, 5s));

    // The DestinationRule lands in the cluster: the findings metric shows it on both objects.
    fs::copy_file(fixtures / "walkthrough-4-dr-override" / "dr-httpbin-full-mtls.yaml",
                  cluster.path() / "base" / "dr.yaml");
    CHECK(eventually([&] { return findings_102() == 2; }, 5s));

    // A broken file: counted, logged, the last snapshot stays and decisions say it may be stale.
    write_text(cluster.path() / "base" / "broken.yaml", "kind: [\n");
    CHECK(eventually(
        [&] {
            return sample(scrape(serve.port, serve.ca()),
                          R"(mtls_guard_snapshot_reloads_total{result="failure"})") == 1;
        },
        5s));
    CHECK(findings_102() == 2);
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    CHECK(client.exchange(get("/readyz")).status == 200);
    const json response = response_of(
        client.exchange(post(admission_review("st", dr_legacy_plain(), "CREATE").dump())), "st");
    CHECK(any_warning_has(response, "could not be reloaded"));
    CHECK_THAT(serve.process->err(), Catch::Contains("snapshot reload failed"));
}

TEST_CASE("Not ready until a snapshot loads: /readyz and /validate say 503") {
    TempDir cluster;
    write_text(cluster.path() / "broken.yaml", "kind: [\n");
    Serve serve({{"--snapshot", cluster.path().string()}, false, true, true, "1", false});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    CHECK(client.exchange(get("/healthz")).status == 200);
    CHECK(client.exchange(get("/readyz")).status == 503);
    CHECK(
        client.exchange(post(admission_review("nr", dr_legacy_plain(), "CREATE").dump())).status ==
        503);
    fs::copy(fixtures / "walkthrough-base", cluster.path() / "base", fs::copy_options::recursive);
    write_text(cluster.path() / "broken.yaml", "# fixed\n");
    CHECK(eventually([&] { return client.exchange(get("/readyz")).status == 200; }, 5s));
}

TEST_CASE("A certificate swap during continuous traffic fails no request") {
    TempDir certs;
    const auto a = mtlsguard::https::write_self_signed_certificate(certs.path() / "a",
                                                                   {"localhost"}, {"127.0.0.1"});
    const auto b = mtlsguard::https::write_self_signed_certificate(certs.path() / "b",
                                                                   {"localhost"}, {"127.0.0.1"});
    // The kubelet's layout for a mounted Secret: files behind a `..data` symlink swapped at once.
    const fs::path mount = certs.path() / "mount";
    const auto stage = [&](const std::string& name, const fs::path& cert, const fs::path& key) {
        fs::create_directories(mount / name);
        fs::copy_file(cert, mount / name / "tls.crt");
        fs::copy_file(key, mount / name / "tls.key");
        fs::create_directory_symlink(name, mount / "..data_tmp");
        fs::rename(mount / "..data_tmp", mount / "..data");
    };
    stage("..2024_a", a.certificate, a.private_key);
    fs::create_symlink("..data/tls.crt", mount / "tls.crt");
    fs::create_symlink("..data/tls.key", mount / "tls.key");

    Serve serve(
        {{"--tls-cert", (mount / "tls.crt").string(), "--tls-key", (mount / "tls.key").string()},
         true,
         false,
         true,
         "1",
         false});
    const ClientOptions trust_both{{a.ca_certificate, b.ca_certificate}, {}, {}, false};
    serve.wait_ready(trust_both);
    const std::string fingerprint_a = fingerprint_of_file(a.certificate);
    const std::string fingerprint_b = fingerprint_of_file(b.certificate);

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0}, kept_alive_ok{0};
    std::atomic<bool> saw_a{false}, saw_b{false};
    std::string failure;
    std::mutex failure_mutex;
    const auto record_failure = [&](const std::string& what) {
        ++failed;
        std::lock_guard lock(failure_mutex);
        failure = what;
    };
    const std::string body = admission_review("swap", dr_legacy_plain(), "CREATE").dump();
    std::vector<std::thread> traffic;
    // New connections: each handshake shows which certificate is being served.
    for (int t = 0; t < 2; ++t)
        traffic.emplace_back([&] {
            for (int i = 0; i < 5000 && !stop; ++i) {
                TlsClient client(serve.port, trust_both);
                if (const error_code ec = client.connect()) {
                    record_failure("connect: " + ec.message());
                    continue;
                }
                const std::string fp = client.peer_fingerprint();
                (fp == fingerprint_a ? saw_a : saw_b) = true;
                Reply reply;
                if (const error_code ec = client.send(post(body));
                    ec || client.read(reply) || reply.status != 200)
                    record_failure("exchange on a new connection");
                else
                    ++ok;
            }
        });
    // One kept-alive connection across the swap keeps its context and keeps working.
    traffic.emplace_back([&] {
        TlsClient client(serve.port, trust_both);
        if (client.connect()) {
            record_failure("kept-alive connect");
            return;
        }
        for (int i = 0; i < 100000 && !stop; ++i) {
            Reply reply;
            if (client.send(post(body)) || client.read(reply) || reply.status != 200) {
                record_failure("exchange on the kept-alive connection");
                return;
            }
            ++kept_alive_ok;
        }
    });

    REQUIRE(eventually([&] { return saw_a.load() && ok > 20; }, 5s));
    stage("..2024_b", b.certificate, b.private_key);
    const bool switched = eventually([&] { return saw_b.load(); }, 5s);
    const int before_settle = ok;
    eventually([&] { return ok > before_settle + 20; }, 2s);
    stop = true;
    for (auto& t : traffic)
        t.join();
    INFO("last failure: " << failure);
    CHECK(switched);
    CHECK(failed == 0);
    CHECK(ok > 40);
    CHECK(kept_alive_ok > 40);
    CHECK(sample(scrape(serve.port, b.ca_certificate),
                 R"(mtls_guard_tls_reloads_total{result="success"})") == 1);

    // A broken pair (B's certificate with A's key) is refused; B stays in service.
    stage("..2024_broken", b.certificate, a.private_key);
    CHECK(eventually(
        [&] {
            return sample(scrape(serve.port, b.ca_certificate),
                          R"(mtls_guard_tls_reloads_total{result="failure"})") == 1;
        },
        5s));
    TlsClient after(serve.port, trust_both);
    REQUIRE_FALSE(after.connect());
    CHECK(after.peer_fingerprint() == fingerprint_b);
    CHECK(after.exchange(get("/healthz")).status == 200);
    // The metric and the log line are written separately; under load the line may come later.
    CHECK(eventually(
        [&] { return serve.process->err().find("new certificate refused") != std::string::npos; },
        5s));
}

TEST_CASE("With --client-ca only clients with a certificate from that CA get in") {
    TempDir certs;
    const auto clients = mtlsguard::https::write_self_signed_certificate(
        certs.path() / "clients", {"localhost"}, {"127.0.0.1"});
    const auto strangers = mtlsguard::https::write_self_signed_certificate(
        certs.path() / "strangers", {"localhost"}, {"127.0.0.1"});
    Serve serve({{"--client-ca", clients.ca_certificate.string()}, true, true, true, "1", false});

    ClientOptions with_cert{{serve.ca()}, clients.certificate, clients.private_key, false};
    serve.wait_ready(with_cert);
    TlsClient good(serve.port, with_cert);
    REQUIRE_FALSE(good.connect());
    CHECK(good.exchange(get("/healthz")).status == 200);

    // Without a certificate, or with one from another CA, the handshake (or the first read, as
    // TLS 1.3 reports the refusal after the client's Finished) fails.
    const auto refused = [&](const ClientOptions& options) {
        TlsClient client(serve.port, options);
        if (client.connect())
            return true;
        Reply reply;
        return static_cast<bool>(client.send(get("/healthz"))) ||
               static_cast<bool>(client.read(reply));
    };
    CHECK(refused({{serve.ca()}, {}, {}, false}));
    CHECK(refused({{serve.ca()}, strangers.certificate, strangers.private_key, false}));
    CHECK(good.exchange(get("/readyz")).status == 200);
}

TEST_CASE("Over --max-connections new connections are closed at once and counted") {
    // Readiness is polled on the plain metrics port: a probe on the TLS port would hold one of the
    // two places until the server has read the probe's close, which may come after `second`.
    ServeOptions options;
    options.extra = {"--max-connections", "2", "--metrics-listen", "127.0.0.1:0"};
    options.ready = false;
    Serve serve(options);
    REQUIRE(serve.metrics_port != 0);
    serve.wait_ready_on_metrics_port();
    TlsClient first = client_for(serve);
    TlsClient second = client_for(serve);
    REQUIRE_FALSE(first.connect());
    REQUIRE_FALSE(second.connect());
    CHECK(first.exchange(get("/healthz")).status == 200);
    CHECK(second.exchange(get("/healthz")).status == 200);

    TlsClient third = client_for(serve);
    CHECK(third.connect());

    // The plain metrics port has its own budget, serves /metrics and the probes, never /validate.
    PlainClient scraper(serve.metrics_port);
    REQUIRE_FALSE(scraper.connect());
    REQUIRE_FALSE(
        scraper.write_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    const auto [metrics, ec] = scraper.read_until_closed(5s);
    CHECK_THAT(metrics, Catch::StartsWith("HTTP/1.1 200 OK"));
    CHECK_THAT(metrics, Catch::Contains("mtls_guard_connections_rejected_total 1"));
    PlainClient validate(serve.metrics_port);
    REQUIRE_FALSE(validate.connect());
    REQUIRE_FALSE(validate.write_raw("POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: "
                                     "application/json\r\nContent-Length: 2\r\n\r\n{}"));
    CHECK_THAT(validate.read_until_closed(5s).first, Catch::StartsWith("HTTP/1.1 404"));
    // And the TLS port has no /metrics then.
    CHECK(first.exchange(get("/metrics")).status == 404);

    // A place frees up when a connection closes.
    first.close();
    CHECK(eventually(
        [&] {
            TlsClient next = client_for(serve);
            return !next.connect() && next.exchange(get("/healthz")).status == 200;
        },
        5s));
}

TEST_CASE("A kept-alive connection idle past the idle timeout is closed; a busy one stays open") {
    ServeOptions options;
    options.extra = {"--idle-timeout-seconds", "1"};
    Serve serve(options);
    TlsClient idle = client_for(serve);
    REQUIRE_FALSE(idle.connect());
    REQUIRE(idle.exchange(get("/healthz")).status == 200);
    TlsClient busy = client_for(serve);
    REQUIRE_FALSE(busy.connect());
    // The busy connection asks every 200 ms for 2.5 s: it is never idle for a whole second.
    const auto started = Clock::now();
    while (Clock::now() - started < 2500ms) {
        REQUIRE(busy.exchange(get("/healthz")).status == 200);
        std::this_thread::sleep_for(200ms);
    }
    CHECK(is_closed(idle.wait_closed(3s)));
    CHECK(busy.exchange(get("/healthz")).status == 200);
}

TEST_CASE("SIGTERM drains: requests in flight finish, idle connections close, exit 0") {
    // The body of the request in flight arrives after the drain began: give it time.
    Serve serve({{}, true, true, true, "20"});
    TlsClient idle = client_for(serve);
    REQUIRE_FALSE(idle.connect());
    CHECK(idle.exchange(get("/healthz")).status == 200);

    // A request in flight: header and half the body sent when the signal arrives.
    TlsClient busy = client_for(serve);
    REQUIRE_FALSE(busy.connect());
    const std::string body = admission_review("drain", dr_full_mtls(), "CREATE").dump();
    const std::size_t half = body.size() / 2;
    REQUIRE_FALSE(busy.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/json\r\nContent-Length: " +
                                 std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, half)));
    std::this_thread::sleep_for(100ms);
    serve.process->signal(SIGTERM);

    // The idle keep-alive connection is closed promptly, long before the 120 s idle timeout.
    CHECK(is_closed(idle.wait_closed(3s)));
    // New connections are refused once the listener has stopped.
    CHECK(eventually([&] { return static_cast<bool>(client_for(serve).connect()); }, 3s));
    // The request in flight completes, with its verdict, and its connection closes after it.
    REQUIRE_FALSE(busy.write_raw(body.substr(half)));
    Reply reply;
    REQUIRE_FALSE(busy.read(reply));
    CHECK(response_of(reply, "drain").at("allowed") == false);
    CHECK_FALSE(reply.keep_alive);
    CHECK(serve.process->wait_exit(10s) == 0);
    CHECK_THAT(serve.process->err(), Catch::Contains("stopped cleanly"));
}

TEST_CASE("A second SIGTERM during the drain exits at once") {
    Serve serve({{}, true, true, true, "20"});
    TlsClient busy = client_for(serve);
    REQUIRE_FALSE(busy.connect());
    // A request that never completes keeps the drain waiting (up to its 20 s timeout).
    REQUIRE_FALSE(busy.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"));
    std::this_thread::sleep_for(100ms);
    serve.process->signal(SIGTERM);
    CHECK_FALSE(serve.process->wait_exit(500ms));
    serve.process->signal(SIGTERM);
    CHECK(serve.process->wait_exit(5s) == 1);
    CHECK_THAT(serve.process->err(), Catch::Contains("second signal"));
}

TEST_CASE("serve waits for certificate files that are not there yet") {
    TempDir later;
    Serve serve({{"--tls-cert", (later.path() / "tls.crt").string(), "--tls-key",
                  (later.path() / "tls.key").string()},
                 true,
                 false,
                 false});
    std::this_thread::sleep_for(1200ms);
    CHECK(serve.process->running());
    CHECK_FALSE(fs::exists(serve.port_file()));
    // Logged at start; a loaded machine may take longer than the 1.2 s above.
    CHECK(eventually(
        [&] {
            return serve.process->err().find("waiting for a usable serving certificate") !=
                   std::string::npos;
        },
        5s));

    SECTION("and serves once they appear") {
        const auto generated = mtlsguard::https::write_self_signed_certificate(
            later.path(), {"localhost"}, {"127.0.0.1"});
        serve.wait_for_port(15s);
        serve.wait_ready({{generated.ca_certificate}});
        TlsClient client(serve.port, {{generated.ca_certificate}});
        REQUIRE_FALSE(client.connect());
        CHECK(client.exchange(get("/healthz")).status == 200);
    }
    SECTION("and stops cleanly on SIGTERM meanwhile") {
        serve.process->signal(SIGTERM);
        CHECK(serve.process->wait_exit(5s) == 0);
    }
}

TEST_CASE("Usage errors exit 2 with a message") {
    TempDir dir;
    const auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), "serve");
        auto child = std::make_unique<ChildProcess>(args, dir.path());
        const auto code = child->wait_exit(10s);
        REQUIRE(code);
        return std::make_pair(*code, child->err());
    };
    SECTION("no snapshot outside a pod: the in-cluster config is missing, and says so") {
        // What a pod would see; this process may itself run in one (CI).
        ::unsetenv("KUBERNETES_SERVICE_HOST");
        ::unsetenv("KUBERNETES_SERVICE_PORT");
        const auto [code, err] = run({"--cert-dir", (dir.path() / "c").string()});
        CHECK(code == 2);
        CHECK_THAT(err, Catch::Contains("not running in a cluster"));
        CHECK_THAT(err, Catch::Contains("--kubeconfig"));
    }
    SECTION("--kubeconfig together with --snapshot") {
        auto args = snapshot_args();
        args.insert(args.end(), {"--kubeconfig", "/dev/null"});
        const auto [code, err] = run(args);
        CHECK(code == 2);
        CHECK_THAT(err, Catch::Contains("exclude each other"));
    }
    SECTION("a kubeconfig that does not exist is named") {
        const auto [code, err] = run({"--kubeconfig", (dir.path() / "missing.yaml").string(),
                                      "--cert-dir", (dir.path() / "c").string()});
        CHECK(code == 2);
        CHECK_THAT(err, Catch::Contains("missing.yaml"));
    }
    SECTION("--kube-context without --kubeconfig") {
        const auto [code, err] = run({"--kube-context", "prod"});
        CHECK(code == 2);
        CHECK_THAT(err, Catch::Contains("--kube-context needs --kubeconfig"));
    }
    SECTION("an unknown --stale-policy") {
        CHECK(run({"--stale-policy", "maybe"}).first == 2);
    }
    SECTION("a listen address that is not ADDR:PORT") {
        auto args = snapshot_args();
        args.insert(args.end(), {"--listen", "localhost"});
        const auto [code, err] = run(args);
        CHECK(code == 2);
        CHECK_THAT(err, Catch::Contains("--listen"));
    }
    SECTION("a certificate without its key") {
        auto args = snapshot_args();
        args.insert(args.end(), {"--tls-cert", "/nonexistent.crt"});
        CHECK(run(args).first == 2);
    }
    SECTION("a port already in use") {
        Serve first;
        auto args = snapshot_args();
        args.insert(args.end(), {"--listen", "127.0.0.1:" + std::to_string(first.port),
                                 "--cert-dir", (dir.path() / "c").string()});
        const auto [code, err] = run(args);
        CHECK(code == 2);
        CHECK_THAT(err,
                   Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(first.port)));
    }
}

TEST_CASE("JSON logs: one object per line, one decision line per request, never a body") {
    Serve serve({{"--log-format", "json"}});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    json sneaky = dr_legacy_plain();
    sneaky["metadata"]["annotations"] = {{"note", "BODY-MARKER-7731"}};
    json review = admission_review("log-1", sneaky, "CREATE");
    review["request"]["name"] = "odd\"name\nwith a newline";
    response_of(client.exchange(post(review.dump())), "log-1");
    client.exchange(post(admission_review("log-2", dr_full_mtls(), "CREATE", true).dump()));
    client.exchange(post("BODY-MARKER-7731 is not JSON"));

    // The lines are written as they happen; give the last one a moment.
    std::vector<json> lines;
    eventually(
        [&] {
            lines.clear();
            std::istringstream in(serve.process->err());
            std::string line;
            while (std::getline(in, line))
                if (!line.empty())
                    lines.push_back(json::parse(line, nullptr, false));
            int decisions = 0;
            for (const auto& l : lines)
                decisions += l.is_object() && l.value("logger", "") == "admission";
            return decisions == 3;
        },
        5s);
    CHECK_THAT(serve.process->err(), !Catch::Contains("BODY-MARKER-7731"));
    std::vector<json> decisions;
    for (const auto& line : lines) {
        INFO(line.dump());
        REQUIRE(line.is_object());
        for (const char* key : {"time", "level", "logger", "msg"})
            CHECK(line.contains(key));
        if (line.value("logger", "") == "admission")
            decisions.push_back(line);
    }
    REQUIRE(decisions.size() == 3);
    for (const auto& d : decisions)
        for (const char* key : {"uid", "kind", "namespace", "name", "operation", "dryRun",
                                "allowed", "codes", "latency_us", "status"})
            CHECK(d.contains(key));
    CHECK(decisions[0].at("uid") == "log-1");
    CHECK(decisions[0].at("name") == "odd\"name\nwith a newline");
    CHECK(decisions[0].at("kind") == "DestinationRule");
    CHECK(decisions[0].at("namespace") == "legacy");
    CHECK(decisions[0].at("operation") == "CREATE");
    CHECK(decisions[0].at("latency_us").is_number_integer());
    CHECK(decisions[1].at("uid") == "log-2");
    CHECK(decisions[1].at("dryRun") == true);
    CHECK(decisions[1].at("allowed") == false);
    CHECK(decisions[1].at("codes") == json::array({"MTG102"}));
    CHECK(decisions[2].at("status") == 400);
}

// =============================================================================================
// Faults: clients that trickle, floods, and reloads under traffic

TEST_CASE("A slowloris client trickling its header is cut at the header timeout, not served") {
    Serve serve; // header timeout 1 s, counted from the header's first byte
    TlsClient slow = client_for(serve);
    REQUIRE_FALSE(slow.connect());
    const std::string header = "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                               "application/json\r\nX-Padding: " +
                               std::string(200, 'p') + "\r\n\r\n";
    const auto started = Clock::now();
    std::size_t sent = 0;
    bool cut = false;
    // One byte every 100 ms: each byte would reset a per-read timer, never the header's clock.
    while (sent < header.size() && Clock::now() - started < 10s) {
        if (slow.write_raw(header.substr(sent, 1))) {
            cut = true;
            break;
        }
        ++sent;
        if (slow.peer_hung_up(100ms)) {
            cut = true;
            break;
        }
    }
    const auto lasted = Clock::now() - started;
    INFO("bytes sent before the cut: " << sent);
    CHECK(cut);
    CHECK(sent < header.size());
    CHECK(lasted < 4s);
    check_still_serving(serve);
}

TEST_CASE("A client trickling its body is cut at the body timeout while others are served") {
    Serve serve; // body timeout 1 s for the whole body
    TlsClient slow = client_for(serve);
    REQUIRE_FALSE(slow.connect());
    REQUIRE_FALSE(slow.write_raw("POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                                 "Content-Type: application/json\r\nContent-Length: 500\r\n\r\n"));
    const auto started = Clock::now();
    int sent = 0;
    bool cut = false;
    while (sent < 500 && Clock::now() - started < 10s) {
        if (slow.write_raw(" ")) {
            cut = true;
            break;
        }
        ++sent;
        if (sent % 5 == 0)
            check_still_serving(serve); // the trickler holds one connection, not the server
        if (slow.peer_hung_up(100ms)) {
            cut = true;
            break;
        }
    }
    INFO("body bytes sent before the cut: " << sent);
    CHECK(cut);
    CHECK(sent < 500);
    CHECK(Clock::now() - started < 4s);
    check_still_serving(serve);
}

TEST_CASE("A flood over --max-connections: the limit holds and a kept-alive client is served") {
    // A handshake timeout long enough that the flood's connections are all open at once.
    ServeOptions options;
    options.extra = {"--max-connections", "8", "--metrics-listen", "127.0.0.1:0"};
    options.header_timeout = "8";
    // The readiness probe must not hold one of the places (see the test above).
    options.ready = false;
    Serve serve(options);
    REQUIRE(serve.metrics_port != 0);
    serve.wait_ready_on_metrics_port();
    TlsClient keeper = client_for(serve);
    REQUIRE_FALSE(keeper.connect());
    REQUIRE(keeper.exchange(get("/healthz")).status == 200);

    std::atomic<bool> flooding{true};
    std::atomic<int> answered{0}, failed{0};
    std::string failure;
    std::thread traffic([&] {
        const std::string body = admission_review("flood", dr_full_mtls(), "CREATE").dump();
        for (int i = 0; i < 100000 && flooding; ++i) {
            Reply reply;
            if (const error_code ec = keeper.send(post(body));
                ec || keeper.read(reply) || reply.status != 200) {
                failure = "request " + std::to_string(i) + " on the kept-alive connection";
                ++failed;
                return;
            }
            ++answered;
        }
    });

    // Silent TCP connections, as a port scanner or a broken client opens them: the first seven
    // take the free places (waiting for a ClientHello), the rest are closed at once.
    constexpr int flood = 100;
    std::vector<std::unique_ptr<PlainClient>> sockets;
    for (int i = 0; i < flood; ++i) {
        auto socket = std::make_unique<PlainClient>(serve.port);
        if (!socket->connect())
            sockets.push_back(std::move(socket));
    }
    const int answered_at_flood = answered;
    int held = 0;
    for (auto& socket : sockets)
        held += socket->peer_hung_up(200ms) ? 0 : 1;
    CHECK(sockets.size() == flood);
    CHECK(held == 7);
    // A well-behaved newcomer is refused too while the places are taken...
    CHECK(client_for(serve).connect());
    // ...but the kept-alive client went on being answered during the whole flood.
    CHECK(answered > answered_at_flood);
    const auto metrics_text = [&] {
        PlainClient scraper(serve.metrics_port);
        REQUIRE_FALSE(scraper.connect());
        REQUIRE_FALSE(
            scraper.write_raw("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        return scraper.read_until_closed(5s).first;
    };
    CHECK_THAT(metrics_text(), Catch::Contains("mtls_guard_connections_rejected_total " +
                                               std::to_string(flood - 7 + 1)));

    flooding = false;
    traffic.join();
    INFO("failure: " << failure);
    CHECK(failed == 0);
    // The flood leaves: places free up and newcomers are served again.
    sockets.clear();
    CHECK(eventually(
        [&] {
            TlsClient next = client_for(serve);
            return !next.connect() && next.exchange(get("/healthz")).status == 200;
        },
        5s));
}

TEST_CASE("A --snapshot reload during continuous traffic fails no request") {
    TempDir cluster;
    const fs::path base = cluster.path() / "base";
    fs::copy(fixtures / "walkthrough-base", base, fs::copy_options::recursive);
    const std::string plaintext_policy =
        slurp(fixtures / "walkthrough-3-plaintext" / "policy-plaintext.yaml");
    // As a ConfigMap or GitOps sync lands a file: written aside, renamed into place at once.
    const auto put_policy = [&](const std::string& text) {
        write_text(base / "policy.yaml.tmp", text);
        fs::rename(base / "policy.yaml.tmp", base / "policy.yaml");
    };
    put_policy(plaintext_policy);
    Serve serve({{"--snapshot", base.string(), "--istio-version", "1.5"}, false});
    const auto reloads = [&] {
        return sample(scrape(serve.port, serve.ca()),
                      R"(mtls_guard_snapshot_reloads_total{result="success"})");
    };

    // ISTIO_MUTUAL to httpbin.full: denied while its Policy says plaintext, allowed without it.
    const std::string body = admission_review("reload", dr_full_mtls(), "CREATE").dump();
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0}, allowed{0}, denied{0};
    std::mutex failure_mutex;
    std::string failure;
    const auto exchange = [&](TlsClient& client) {
        Reply reply;
        if (client.send(post(body)) || client.read(reply) || reply.status != 200)
            return false;
        const json parsed = body_json(reply);
        if (!parsed.is_object() || parsed["response"]["uid"] != "reload")
            return false;
        (parsed["response"]["allowed"] == true ? allowed : denied)++;
        return true;
    };
    std::vector<std::thread> traffic;
    for (int t = 0; t < 2; ++t)
        traffic.emplace_back([&, t] {
            TlsClient client(serve.port, {{serve.ca()}});
            const bool reconnect = t == 1; // one kept-alive connection, one new connection each
            if (!reconnect && client.connect()) {
                ++failed;
                return;
            }
            for (int i = 0; i < 100000 && !stop; ++i) {
                if ((reconnect && client.connect()) || !exchange(client)) {
                    ++failed;
                    std::lock_guard lock(failure_mutex);
                    failure = "request " + std::to_string(i) + " of client " + std::to_string(t);
                    if (!reconnect && client.connect())
                        return;
                    continue;
                }
                ++ok;
            }
        });

    const double first = reloads();
    constexpr int swaps = 6;
    int seen = 0;
    for (int i = 0; i < swaps; ++i) {
        put_policy(i % 2 == 0 ? "# no Policy for httpbin.full\n" : plaintext_policy);
        seen += eventually([&] { return reloads() >= first + i + 1; }, 5s) ? 1 : 0;
        const int before = ok;
        eventually([&] { return ok > before + 10; }, 2s);
    }
    stop = true;
    for (auto& t : traffic)
        t.join();
    INFO("last failure: " << failure);
    CHECK(seen == swaps);
    CHECK(failed == 0);
    CHECK(ok > 60);
    CHECK(allowed > 0);
    CHECK(denied > 0);
    CHECK(sample(scrape(serve.port, serve.ca()),
                 R"(mtls_guard_snapshot_reloads_total{result="failure"})") == 0);
}

TEST_CASE("Large bodies in progress are bounded in memory: beyond eight at once, 503") {
    // Budget: 8 x --max-body-bytes. Eight stalled 1 KiB bodies fill it; requests without a body
    // still pass, and the room frees up when the stalled clients go.
    Serve serve({{"--max-body-bytes", "1024"}, true, true, true, "3"});
    const std::string header = "POST /validate HTTP/1.1\r\nHost: localhost\r\n"
                               "Content-Type: application/json\r\nContent-Length: 1024\r\n\r\n";
    std::vector<std::unique_ptr<TlsClient>> stalled;
    for (int i = 0; i < 8; ++i) {
        auto client = std::make_unique<TlsClient>(serve.port, ClientOptions{{serve.ca()}});
        REQUIRE_FALSE(client->connect());
        REQUIRE_FALSE(client->write_raw(header + "{\"apiVersion\":"));
        stalled.push_back(std::move(client));
    }
    // Each header is read before its body: give the server the moment it needs for the eighth.
    std::this_thread::sleep_for(300ms);
    TlsClient ninth = client_for(serve);
    REQUIRE_FALSE(ninth.connect());
    REQUIRE_FALSE(ninth.write_raw(header + "{}"));
    Reply refused;
    REQUIRE_FALSE(ninth.read(refused));
    CHECK(refused.status == 503);
    CHECK_FALSE(refused.keep_alive);
    CHECK_THAT(body_json(refused).at("error").get<std::string>(), Catch::Contains("retry"));
    TlsClient probe = client_for(serve);
    REQUIRE_FALSE(probe.connect());
    CHECK(probe.exchange(get("/healthz")).status == 200);
    // The stalled clients leave: their bodies' room is free again and reviews go through.
    stalled.clear();
    CHECK(eventually(
        [&] {
            TlsClient next = client_for(serve);
            if (next.connect())
                return false;
            Reply reply;
            return !next.send(
                       post(admission_review("later", dr_legacy_plain(), "CREATE").dump())) &&
                   !next.read(reply) && reply.status == 200;
        },
        8s));
}

TEST_CASE("One request cannot write megabytes of log: the fields it chooses are cut to 256") {
    Serve serve({{"--log-format", "json"}});
    TlsClient client = client_for(serve);
    REQUIRE_FALSE(client.connect());
    json review = admission_review(std::string(100000, 'u'), dr_legacy_plain(), "CREATE");
    review["request"]["name"] = std::string(100000, 'n');
    review["request"]["namespace"] = std::string(100000, 's');
    client.exchange(post(review.dump()));
    json unreadable = review;
    unreadable["request"]["object"] = "not an object";
    unreadable["request"]["uid"] = std::string(100000, 'x');
    client.exchange(post(unreadable.dump()));
    std::vector<json> decisions;
    eventually(
        [&] {
            decisions.clear();
            std::istringstream in(serve.process->err());
            std::string line;
            while (std::getline(in, line)) {
                const json parsed = json::parse(line, nullptr, false);
                if (parsed.is_object() && parsed.value("logger", "") == "admission")
                    decisions.push_back(parsed);
            }
            return decisions.size() == 2;
        },
        5s);
    REQUIRE(decisions.size() == 2);
    for (const auto& d : decisions) {
        CHECK(d.at("uid").get<std::string>().size() == 256);
        CHECK(d.at("name").get<std::string>().size() == 256);
        CHECK(d.at("namespace").get<std::string>().size() == 256);
    }
    CHECK(serve.process->err().size() < 16384);
}
