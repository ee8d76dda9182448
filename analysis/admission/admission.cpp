// The admission decision: snapshot + AdmissionReview request in, AdmissionReview response out (spec
// §9).
#include "analysis/admission/admission.hpp"

#include "analysis/admission/flow_comparison.hpp"
#include "analysis/admission/namespace_change.hpp"
#include "analysis/admission/sidecar_change.hpp"
#include "analysis/conflict/object_checks.hpp"
#include "analysis/model/decode.hpp"
#include "analysis/report/messages.hpp"

#include <map>
#include <memory>
#include <set>

namespace mtlsguard::admission {
namespace {

using nlohmann::json;
using resolution::ConfigView;
using resolution::NsId;

enum class Target : std::uint8_t {
    PeerAuthentication,
    DestinationRule,
    VirtualService,
    Sidecar,
    Policy,
    MeshPolicy,
    Namespace, // label changes only (ambient.md §17)
    Other
};

using Request = ReviewRequest;

const json* member(const json& object, const char* key) {
    if (!object.is_object())
        return nullptr;
    auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string string_member(const json& object, const char* key) {
    const json* v = member(object, key);
    return v && v->is_string() ? v->get<std::string>() : std::string();
}

std::string annotation(const json* object, std::string_view key) {
    if (!object)
        return {};
    const json* metadata = member(*object, "metadata");
    const json* annotations = metadata ? member(*metadata, "annotations") : nullptr;
    if (!annotations || !annotations->is_object())
        return {};
    auto it = annotations->find(key);
    return it != annotations->end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Returns the request, or the reason it is malformed.
std::variant<Request, std::string> parse_review(const json& review) {
    if (!review.is_object())
        return std::string("the body is not a JSON object");
    Request r;
    r.review_api_version = string_member(review, "apiVersion");
    if (r.review_api_version != "admission.k8s.io/v1" &&
        r.review_api_version != "admission.k8s.io/v1beta1")
        return std::string("apiVersion must be admission.k8s.io/v1 or admission.k8s.io/v1beta1");
    if (string_member(review, "kind") != "AdmissionReview")
        return std::string("kind must be AdmissionReview");
    const json* request = member(review, "request");
    if (!request || !request->is_object())
        return std::string("request is missing");
    r.uid = string_member(*request, "uid");
    if (r.uid.empty())
        return std::string("request.uid is missing");
    r.operation = string_member(*request, "operation");
    if (r.operation.empty())
        return std::string("request.operation is missing");
    r.namespace_name = string_member(*request, "namespace");
    r.name = string_member(*request, "name");
    if (const json* kind = member(*request, "kind"); kind && kind->is_object())
        r.kind = string_member(*kind, "kind");
    const json* object = member(*request, "object");
    const json* old_object = member(*request, "oldObject");
    if (const json* dry = member(*request, "dryRun"); dry && dry->is_boolean())
        r.dry_run = dry->get<bool>();
    if (r.kind.empty()) {
        const json* source = object ? object : old_object;
        if (source)
            r.kind = string_member(*source, "kind");
    }
    const std::string default_ns =
        r.namespace_name.empty() ? std::string("default") : r.namespace_name;
    const bool decodes = decides_on_kind(r.kind);
    auto read = [&](const json& o) {
        ReviewObject out;
        if (decodes)
            out.decoded = model::decode_object(o, default_ns);
        out.allow_conflict = annotation(&o, allow_conflict_annotation);
        return out;
    };
    if (object)
        r.object = read(*object);
    if (old_object)
        r.old_object = read(*old_object);
    return r;
}

Target target_of(std::string_view kind) {
    if (kind == "PeerAuthentication")
        return Target::PeerAuthentication;
    if (kind == "DestinationRule")
        return Target::DestinationRule;
    if (kind == "VirtualService")
        return Target::VirtualService;
    if (kind == "Sidecar")
        return Target::Sidecar;
    if (kind == "Policy")
        return Target::Policy;
    if (kind == "MeshPolicy")
        return Target::MeshPolicy;
    if (kind == "Namespace")
        return Target::Namespace;
    return Target::Other;
}

bool holds(Target target, const model::DecodedObject& object) {
    switch (target) {
    case Target::PeerAuthentication:
        return std::holds_alternative<model::PeerAuthentication>(object);
    case Target::DestinationRule:
        return std::holds_alternative<model::DestinationRule>(object);
    case Target::VirtualService:
        return std::holds_alternative<model::VirtualService>(object);
    case Target::Sidecar:
        return std::holds_alternative<model::Sidecar>(object);
    case Target::Policy:
        return std::holds_alternative<model::AlphaPolicy>(object) &&
               !std::get<model::AlphaPolicy>(object).mesh_policy;
    case Target::MeshPolicy:
        return std::holds_alternative<model::AlphaPolicy>(object) &&
               std::get<model::AlphaPolicy>(object).mesh_policy;
    case Target::Namespace:
        return std::holds_alternative<model::Namespace>(object);
    case Target::Other:
        return false;
    }
    return false;
}

// The snapshot with (kind, namespace, name) replaced by `object`, or removed when it is null.
std::unique_ptr<ConfigView> view_with(const model::Snapshot& snapshot, Target target,
                                      const std::string& ns, const std::string& name,
                                      const model::DecodedObject* object) {
    auto same = [&](const auto& o) { return o.ref.name == name; };
    if (target == Target::MeshPolicy) {
        auto policies = snapshot.mesh_policies();
        std::erase_if(policies, same);
        if (object)
            policies.push_back(std::get<model::AlphaPolicy>(*object));
        std::stable_sort(policies.begin(), policies.end(),
                         [](const auto& a, const auto& b) { return a.age.older_than(b.age); });
        return std::make_unique<ConfigView>(snapshot, std::move(policies));
    }
    std::vector<model::PeerAuthentication> pas;
    std::vector<model::DestinationRule> drs;
    std::vector<model::AlphaPolicy> policies;
    std::vector<model::VirtualService> virtual_services;
    std::vector<model::Sidecar> sidecars;
    if (auto id = snapshot.namespace_id(ns)) {
        // Room for the changed object, so that adding it does not move the others again.
        const auto copy = [](const auto& from, auto& to) {
            to.reserve(from.size() + 1);
            to.assign(from.begin(), from.end());
        };
        const auto& config = snapshot.config(*id);
        copy(config.peer_authentications, pas);
        copy(config.destination_rules, drs);
        copy(config.policies, policies);
        copy(config.virtual_services, virtual_services);
        copy(config.sidecars, sidecars);
    }
    if (target == Target::PeerAuthentication) {
        std::erase_if(pas, same);
        if (object)
            pas.push_back(std::get<model::PeerAuthentication>(*object));
    } else if (target == Target::DestinationRule) {
        std::erase_if(drs, same);
        if (object)
            drs.push_back(std::get<model::DestinationRule>(*object));
    } else if (target == Target::VirtualService) {
        std::erase_if(virtual_services, same);
        if (object)
            virtual_services.push_back(std::get<model::VirtualService>(*object));
    } else if (target == Target::Sidecar) {
        std::erase_if(sidecars, same);
        if (object)
            sidecars.push_back(std::get<model::Sidecar>(*object));
    } else {
        std::erase_if(policies, same);
        if (object)
            policies.push_back(std::get<model::AlphaPolicy>(*object));
    }
    return std::make_unique<ConfigView>(
        snapshot,
        model::build_namespace_config(ns, std::move(pas), std::move(drs), std::move(policies),
                                      std::move(virtual_services), std::move(sidecars), snapshot),
        // Which rule each client uses for a host changes with DestinationRules, and with the
        // Sidecars that hide hosts; a VirtualService leaves the snapshot's answers as they are.
        target == Target::DestinationRule || target == Target::Sidecar);
}

// The snapshot's own copy of the object, if it has one.
std::optional<model::DecodedObject> current_version(const model::Snapshot& snapshot, Target target,
                                                    const std::string& ns,
                                                    const std::string& name) {
    if (target == Target::MeshPolicy) {
        for (const auto& p : snapshot.mesh_policies())
            if (p.ref.name == name)
                return model::DecodedObject(p);
        return std::nullopt;
    }
    auto id = snapshot.namespace_id(ns);
    if (!id)
        return std::nullopt;
    const auto& config = snapshot.config(*id);
    if (target == Target::PeerAuthentication) {
        for (const auto& o : config.peer_authentications)
            if (o.ref.name == name)
                return model::DecodedObject(o);
    } else if (target == Target::DestinationRule) {
        for (const auto& o : config.destination_rules)
            if (o.ref.name == name)
                return model::DecodedObject(o);
    } else if (target == Target::VirtualService) {
        for (const auto& o : config.virtual_services)
            if (o.ref.name == name)
                return model::DecodedObject(o);
    } else if (target == Target::Sidecar) {
        for (const auto& o : config.sidecars)
            if (o.ref.name == name)
                return model::DecodedObject(o);
    } else if (target == Target::Policy) {
        for (const auto& o : config.policies)
            if (o.ref.name == name)
                return model::DecodedObject(o);
    }
    return std::nullopt;
}

bool key_matches(const std::string& key, const std::string& host) {
    if (key == "*")
        return true;
    if (key.size() > 1 && key[0] == '*')
        return host.size() >= key.size() &&
               host.compare(host.size() - (key.size() - 1), key.size() - 1, key, 1) == 0;
    return key == host;
}

// Every service, in id order.
std::vector<model::ServiceId> all_services(const model::Snapshot& snapshot) {
    std::vector<model::ServiceId> out;
    for (model::ServiceId id = 0; id < snapshot.services().size(); ++id)
        out.push_back(id);
    return out;
}

// The services of namespace `name`, in id order.
std::vector<model::ServiceId> namespace_services(const model::Snapshot& snapshot,
                                                 const std::string& name) {
    if (auto id = snapshot.namespace_id(name))
        return snapshot.namespaces()[*id].services;
    return {};
}

// The services whose host one of `keys` (FQDNs or wildcards) matches, in id order: through the
// host index unless a key is a wildcard.
std::vector<model::ServiceId> services_matching(const model::Snapshot& snapshot,
                                                const std::vector<std::string>& keys) {
    const auto& services = snapshot.services();
    std::vector<model::ServiceId> out;
    const bool any_wildcard = std::any_of(keys.begin(), keys.end(), [](const std::string& k) {
        return k.find('*') != std::string::npos;
    });
    if (any_wildcard) {
        for (model::ServiceId id = 0; id < services.size(); ++id)
            if (std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
                    return key_matches(k, services[id].host);
                }))
                out.push_back(id);
        return out;
    }
    for (const auto& key : keys)
        if (const auto* ids = snapshot.services_for_host(key))
            out.insert(out.end(), ids->begin(), ids->end());
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

// The services a PeerAuthentication in `ns` can change: its namespace's; in the root namespace,
// where a mesh-wide one sets the mesh mode, those without a namespace-wide mode of their own.
std::vector<model::ServiceId>
services_under_peer_authentication(const model::Snapshot& snapshot, const ConfigView& before,
                                   const std::string& ns,
                                   const std::vector<const model::DecodedObject*>& versions) {
    if (ns != snapshot.mesh().root_namespace)
        return namespace_services(snapshot, ns);
    bool mesh_wide = false;
    for (const auto* v : versions)
        mesh_wide = mesh_wide || std::get<model::PeerAuthentication>(*v).selector.empty();
    if (!mesh_wide)
        return {}; // a selector policy in the root namespace applies to nothing
    if (!snapshot.settings().version.modern())
        return all_services(snapshot); // 1.5: any of them switches workloads off alpha policies
    std::vector<model::ServiceId> out;
    const auto& services = snapshot.services();
    for (model::ServiceId id = 0; id < services.size(); ++id) {
        const auto& config = before.config(services[id].ns);
        if (config.is_root || !config.namespace_policy ||
            config.namespace_policy->mode == model::MtlsMode::Unset)
            out.push_back(id);
    }
    return out;
}

// The flows a change can touch: services whose server or client side the object can change.
Touched touched_by(const model::Snapshot& snapshot, const ConfigView& before, Target target,
                   const std::string& ns,
                   const std::vector<const model::DecodedObject*>& versions) {
    Touched out;
    switch (target) {
    case Target::MeshPolicy:
        out.services = all_services(snapshot);
        break;
    case Target::Sidecar: // the hosts sidecar_reach() finds shown
    case Target::Policy:
        out.services = namespace_services(snapshot, ns);
        break;
    case Target::PeerAuthentication:
        out.services = services_under_peer_authentication(snapshot, before, ns, versions);
        break;
    case Target::DestinationRule: {
        std::vector<std::string> keys;
        for (const auto* v : versions)
            keys.push_back(snapshot.resolve_host(std::get<model::DestinationRule>(*v).host, ns));
        out.services = services_matching(snapshot, keys);
        for (std::size_t i = 0; i < snapshot.external_hosts().size(); ++i)
            if (std::any_of(keys.begin(), keys.end(), [&](const std::string& k) {
                    return key_matches(k, snapshot.external_hosts()[i].host);
                }))
                out.external_hosts.push_back(i);
        break;
    }
    case Target::VirtualService: {
        // The services its hosts match: only there can its routes pick a subset (ambient.md §15).
        std::vector<std::string> keys;
        for (const auto* v : versions)
            for (const auto& host : std::get<model::VirtualService>(*v).hosts)
                keys.push_back(snapshot.resolve_host(host, ns));
        out.services = services_matching(snapshot, keys);
        break;
    }
    case Target::Namespace: // compared by compare_relabel, never here
    case Target::Other:
        break;
    }
    return out;
}

// Keeps, for each conflict reported on two objects, the side that names the changed object.
std::vector<conflict::Finding> about(std::vector<conflict::Finding> findings,
                                     const model::ObjectRef& ref) {
    auto names_it = [&](const conflict::Finding& f) {
        return f.resource.kind == ref.kind && f.resource.name == ref.name &&
               f.resource.namespace_name == ref.namespace_name;
    };
    const bool any = std::any_of(findings.begin(), findings.end(), names_it);
    if (!any)
        return findings;
    std::vector<conflict::Finding> out;
    std::map<std::tuple<conflict::Code, std::string, std::uint16_t,
                        std::optional<conflict::WorkloadRef>, std::string>,
             bool>
        seen;
    // First the findings on the changed object, then the flows it does not name.
    for (auto& f : findings)
        if (names_it(f) && f.flow)
            seen[{f.code, f.flow->host, f.flow->port, f.flow->workload, f.flow->subset}] = true;
    for (auto& f : findings) {
        if (names_it(f)) {
            out.push_back(std::move(f));
        } else if (f.flow && !seen.count({f.code, f.flow->host, f.flow->port, f.flow->workload,
                                          f.flow->subset})) {
            out.push_back(std::move(f));
        }
    }
    return out;
}

std::string warning_for(const conflict::Finding& f, std::string_view prefix = {}) {
    return clamp_warning(std::string(prefix) + "[" + std::string(conflict::to_string(f.code)) +
                         "] " + f.resource.kind + " " + model::display_name(f.resource) + ": " +
                         f.message);
}

// The members are emplaced into the objects rather than listed in initializer lists: nlohmann
// builds a [key, value] array per listed member first, and the document is made for every review.
json response_document(const Request& request, bool allowed, const std::string& message, int code,
                       const std::vector<std::string>& warnings) {
    json response(json::value_t::object);
    auto& members = response.get_ref<json::object_t&>();
    members.emplace("uid", request.uid);
    members.emplace("allowed", allowed);
    if (!allowed) {
        json status(json::value_t::object);
        auto& fields = status.get_ref<json::object_t&>();
        fields.emplace("code", code);
        fields.emplace("message", message);
        fields.emplace("reason", code == 403 ? "Forbidden" : "BadRequest");
        members.emplace("status", std::move(status));
    }
    // Fit the API server's limits: whole warnings only, 4096 characters together.
    json list = json::array();
    std::size_t total = 0;
    for (std::size_t i = 0; i < warnings.size(); ++i) {
        const std::string& w = warnings[i];
        const std::string more =
            "[mtls-guard] " + std::to_string(warnings.size() - i) + " more warnings omitted";
        if (total + w.size() + more.size() > max_warnings_total && i + 1 < warnings.size()) {
            list.push_back(more);
            break;
        }
        if (total + w.size() > max_warnings_total)
            break;
        list.push_back(w);
        total += w.size();
    }
    if (!list.empty())
        members.emplace("warnings", std::move(list));
    json document(json::value_t::object);
    auto& top = document.get_ref<json::object_t&>();
    top.emplace("apiVersion", request.review_api_version);
    top.emplace("kind", "AdmissionReview");
    top.emplace("response", std::move(response));
    return document;
}

// The Namespace a review object holds, if it decoded as one.
const model::Namespace* namespace_in(const std::optional<ReviewObject>& object) {
    if (!object || object->decoded.status != model::DecodeOutcome::Status::Decoded)
        return nullptr;
    return std::get_if<model::Namespace>(&*object->decoded.object);
}

// The mode for a Namespace change: the namespace's own label as it is before the change, so that
// one update cannot both lower the mode and enrol the namespace.
Enforcement namespace_enforcement(const model::Labels& before, const AdmissionSettings& settings,
                                  std::vector<std::string>& warnings) {
    Enforcement mode = settings.default_mode;
    if (const std::string* label = before.find(mode_label)) {
        if (auto parsed = parse_enforcement(*label))
            mode = *parsed;
        else
            warnings.push_back(clamp_warning(
                "[mtls-guard] namespace label " + std::string(mode_label) + "=\"" + *label +
                "\" is not enforce, warn or off; using " + std::string(to_string(mode))));
    }
    return at_most(mode, settings.strictest_mode);
}

// The warnings that explain a Namespace change: what it breaks at once, what was broken before,
// and what breaks only when its pods restart (injection labels; never a denial).
std::vector<std::string> relabel_warnings(const RelabelComparison& c) {
    std::vector<std::string> out;
    for (const auto& f : c.introduced)
        out.push_back(warning_for(f));
    for (const auto& f : c.existing)
        out.push_back(warning_for(f, "already failing before this change: "));
    for (const auto& f : c.at_restart) {
        std::string w = warning_for(f, "when its pods restart: ");
        if (std::find(out.begin(), out.end(), w) == out.end())
            out.push_back(std::move(w));
    }
    if (c.omitted > 0)
        out.push_back("[mtls-guard] " + std::to_string(c.omitted) +
                      " more affected flows not listed; run mtls-guard analyze for all of them");
    return out;
}

// A Namespace UPDATE that changes istio-injection, istio.io/rev, istio.io/dataplane-mode or
// istio.io/use-waypoint (ambient.md §17). Everything else about namespaces is allowed unread:
// CREATE (nothing runs there yet), DELETE, other labels, and the system namespaces, which the
// webhook must never block (its configuration also leaves them out). A Namespace that does not
// decode is allowed too: the API server validates labels itself, and blocking namespaces on a
// reading problem of ours would be the worse error.
AdmissionDecision decide_namespace(const model::Snapshot& snapshot, const Request& r,
                                   const AdmissionSettings& settings, AdmissionDecision d) {
    std::vector<std::string> warnings;
    auto answer = [&](bool allowed, const std::string& message) {
        d.allowed = allowed;
        for (const auto& w : settings.extra_warnings)
            warnings.push_back(clamp_warning(w));
        d.body = response_document(r, allowed, message, allowed ? 200 : 403, warnings);
        return d;
    };
    const model::Namespace* now = namespace_in(r.object);
    const model::Namespace* old = namespace_in(r.old_object);
    if (d.name.empty() && now)
        d.name = now->name;
    d.namespace_name = d.name;
    const auto id = snapshot.namespace_id(d.name);
    if (r.operation != "UPDATE" || !now || !id || snapshot.namespaces()[*id].system)
        return answer(true, {});
    const model::Labels& before = old ? old->labels : snapshot.namespaces()[*id].labels;
    if (!changes_mesh_labels(before, now->labels))
        return answer(true, {});
    d.enforcement = namespace_enforcement(before, settings, warnings);
    if (d.enforcement == Enforcement::Off)
        return answer(true, {});

    const RelabelComparison c = compare_relabel(snapshot, *id, before, now->labels, findings_kept);
    for (auto code : c.codes)
        d.codes.emplace_back(conflict::to_string(code));
    const auto error = std::find_if(c.introduced.begin(), c.introduced.end(), [](const auto& f) {
        return f.severity == conflict::Severity::Error;
    });
    const bool breaks = c.introduces_error && error != c.introduced.end();
    const std::string& reason = r.object->allow_conflict;
    for (auto& w : relabel_warnings(c))
        warnings.push_back(std::move(w));
    if (!breaks || d.enforcement != Enforcement::Enforce)
        return answer(true, {});
    if (!reason.empty()) {
        d.allow_conflict_reason = reason;
        warnings.insert(warnings.begin(), clamp_warning("[mtls-guard] allowed despite conflicts: " +
                                                        std::string(allow_conflict_annotation) +
                                                        "=\"" + reason + "\""));
        return answer(true, {});
    }
    const auto errors = std::count_if(c.introduced.begin(), c.introduced.end(), [](const auto& f) {
        return f.severity == conflict::Severity::Error;
    });
    for (const auto& f : c.introduced) {
        const std::string code(conflict::to_string(f.code));
        if (f.severity == conflict::Severity::Error &&
            std::find(d.denial_codes.begin(), d.denial_codes.end(), code) == d.denial_codes.end())
            d.denial_codes.push_back(code);
    }
    std::string message = "mtls-guard: this namespace label change would break mTLS traffic: [" +
                          std::string(conflict::to_string(error->code)) + "] " + error->message;
    if (errors > 1)
        message += " (and " + std::to_string(errors - 1) + " more, see warnings)";
    message += ". To apply it anyway, annotate the Namespace with " +
               std::string(allow_conflict_annotation) + ": \"<reason>\"";
    return answer(false, message);
}

// Every answer carries the caller's extra warnings (e.g. a stale snapshot), within the limits.
json respond(const Request& r, const AdmissionSettings& settings, bool allowed,
             const std::string& message, int code, std::vector<std::string> warnings) {
    for (const auto& w : settings.extra_warnings)
        warnings.push_back(clamp_warning(w));
    return response_document(r, allowed, message, code, warnings);
}

// The decision before anything is read: the request's identity, allowed, in the default mode.
AdmissionDecision undecided(const Request& r, const AdmissionSettings& settings) {
    AdmissionDecision d;
    d.uid = r.uid;
    d.kind = r.kind;
    d.namespace_name = r.namespace_name;
    d.name = r.name;
    d.operation = r.operation;
    d.dry_run = r.dry_run;
    d.enforcement = settings.default_mode;
    return d;
}

// Whether the webhook has anything to say about this kind and operation.
bool decides_on(Target target, const std::string& operation) {
    return target != Target::Other &&
           (operation == "CREATE" || operation == "UPDATE" || operation == "DELETE");
}

// The mode for a change to an object: the namespace label overrides the default mode;
// cluster-scoped objects have none. A label that is no mode is named in a warning.
Enforcement object_enforcement(const model::Snapshot& snapshot, const Request& r, Target target,
                               const AdmissionSettings& settings,
                               std::vector<std::string>& warnings) {
    Enforcement mode = settings.default_mode;
    if (target != Target::MeshPolicy) {
        if (auto ns = snapshot.namespace_id(r.namespace_name)) {
            if (const std::string* label = snapshot.namespaces()[*ns].labels.find(mode_label)) {
                if (auto parsed = parse_enforcement(*label))
                    mode = *parsed;
                else
                    warnings.push_back(clamp_warning(
                        "[mtls-guard] namespace label " + std::string(mode_label) + "=\"" + *label +
                        "\" is not enforce, warn or off; using " + std::string(to_string(mode))));
            }
        }
    }
    return at_most(mode, settings.strictest_mode);
}

// Both versions of the changed object, read where the request holds them, not copied.
struct Candidate {
    Target target = Target::Other;
    std::string ns; // empty for a MeshPolicy
    std::string name;
    const model::DecodedObject* new_version = nullptr; // null: the object is removed
    const model::DecodedObject* old_version = nullptr; // oldObject, when it decodes as the kind
    bool removes = false;
};
// request.kind and the object disagree: not one of ours after all.
struct NotOurs {};
// A new version that cannot be read, which is itself a problem: why.
struct Unreadable {
    std::string reason;
};

// Decodes both versions of the object the review changes.
std::variant<Candidate, NotOurs, Unreadable> read_candidate(const Request& r, Target target) {
    Candidate c;
    c.target = target;
    c.removes = r.operation == "DELETE";
    if (!c.removes) {
        static const model::DecodeOutcome missing{
            model::DecodeOutcome::Status::Error, {}, "request.object is missing"};
        const model::DecodeOutcome& outcome = r.object ? r.object->decoded : missing;
        if (outcome.status == model::DecodeOutcome::Status::Decoded &&
            !holds(target, *outcome.object))
            return NotOurs{};
        if (outcome.status != model::DecodeOutcome::Status::Decoded)
            return Unreadable{
                "mtls-guard cannot read this " + r.kind + ": " +
                (outcome.error.empty() ? std::string("unsupported apiVersion") : outcome.error)};
        c.new_version = &*outcome.object;
    }
    if (r.old_object) {
        const model::DecodeOutcome& outcome = r.old_object->decoded;
        if (outcome.status == model::DecodeOutcome::Status::Decoded &&
            holds(target, *outcome.object))
            c.old_version = &*outcome.object;
    }
    const std::string default_ns =
        r.namespace_name.empty() ? std::string("default") : r.namespace_name;
    c.ns = target == Target::MeshPolicy ? std::string() : default_ns;
    c.name = r.name.empty() && c.new_version ? std::visit(
                                                   [](const auto& o) -> std::string {
                                                       if constexpr (requires { o.ref; })
                                                           return o.ref.name;
                                                       else
                                                           return {};
                                                   },
                                                   *c.new_version)
                                             : r.name;
    return c;
}

// An object that cannot be read is refused in enforce mode, and a warning otherwise.
AdmissionDecision answer_unreadable(const Request& r, const AdmissionSettings& settings,
                                    AdmissionDecision d, const std::string& reason,
                                    std::vector<std::string> warnings) {
    if (d.enforcement == Enforcement::Enforce) {
        d.allowed = false;
        d.body = respond(r, settings, false, reason, 400, std::move(warnings));
    } else {
        warnings.push_back(clamp_warning("[mtls-guard] " + reason));
        d.body = respond(r, settings, true, {}, 200, std::move(warnings));
    }
    return d;
}

// The configuration before and after the change.
struct Views {
    std::optional<model::DecodedObject> current; // the snapshot's own copy of the object
    std::unique_ptr<ConfigView> before;
    std::unique_ptr<ConfigView> after;
    std::optional<NsId> changed; // the namespace whose configuration `after` overrides
};

// Whether the configuration before the change is the snapshot's own, so that the snapshot's
// client index answers for it and the namespace is not built again: a request other than CREATE
// without an oldObject (the snapshot as it is), a CREATE of an object the snapshot does not hold
// (a Sidecar anywhere; another kind in a namespace the snapshot knows, `shortcuts` only), or a
// request whose oldObject is the snapshot's copy (`shortcuts` only; the usual case, as the
// snapshot follows the cluster).
bool before_is_snapshot(const model::Snapshot& snapshot, const Candidate& c,
                        const std::optional<model::DecodedObject>& current, bool create,
                        bool shortcuts) {
    if (c.old_version)
        return shortcuts && current && *c.old_version == *current;
    if (!create)
        return true;
    if (current)
        return false;
    // Resolving every host again costs far more for a Sidecar than for the other kinds.
    return c.target == Target::Sidecar ||
           (shortcuts && (c.target == Target::MeshPolicy || snapshot.namespace_id(c.ns)));
}

// Before: the request's oldObject if it has one; for CREATE, the snapshot without the object;
// otherwise the snapshot as it is. After: the object as requested, or removed.
Views apply_candidate(const model::Snapshot& snapshot, const Request& r, const Candidate& c,
                      bool shortcuts) {
    Views v;
    v.current = current_version(snapshot, c.target, c.ns, c.name);
    // Otherwise the namespace with the oldObject in place of the object, or without it (CREATE).
    v.before = before_is_snapshot(snapshot, c, v.current, r.operation == "CREATE", shortcuts)
                   ? std::make_unique<ConfigView>(snapshot)
                   : view_with(snapshot, c.target, c.ns, c.name, c.old_version);
    v.after = view_with(snapshot, c.target, c.ns, c.name, c.new_version);
    v.changed = c.target == Target::MeshPolicy ? std::nullopt : v.after->overridden_namespace();
    return v;
}

// The flows worth comparing, and the STRICT Services a Sidecar newly hides (named in a warning).
struct TouchedFlows {
    Touched touched;
    std::vector<conflict::Finding> newly_hidden;
};

// The touched flows are those of every version: the request's, and the snapshot's own copy.
TouchedFlows find_touched_flows(const model::Snapshot& snapshot, Views& v, const Candidate& c) {
    std::vector<const model::DecodedObject*> versions;
    if (v.current)
        versions.push_back(&*v.current);
    if (c.old_version)
        versions.push_back(c.old_version);
    if (c.new_version)
        versions.push_back(c.new_version);
    TouchedFlows out{touched_by(snapshot, *v.before, c.target, c.ns, versions), {}};
    // A Sidecar changes only which hosts its clients see (ambient.md §14): the flows to hosts it
    // shows are compared; those it hides carry no code, and the STRICT ones it newly hides are
    // named in one warning.
    if (c.target == Target::Sidecar) {
        auto reach = sidecar_reach(*v.before, *v.after, c.ns, c.name);
        out.touched.services = std::move(reach.shown_services);
        out.touched.external_hosts = std::move(reach.shown_external_hosts);
        out.newly_hidden = std::move(reach.newly_hidden);
        if (reach.own_clients_only) {
            v.before->restrict_clients_to(v.before->namespace_id(c.ns));
            v.after->restrict_clients_to(v.changed);
        }
    }
    return out;
}

// The touched flows compared before and after, told what the kind of change can alter.
Comparison compare_before_after(const Views& v, const Touched& touched, Target target,
                                const AdmissionSettings& settings) {
    return compare_flows(*v.before, *v.after, touched, v.changed,
                         target == Target::DestinationRule || target == Target::VirtualService,
                         target == Target::VirtualService, target == Target::PeerAuthentication,
                         target == Target::Sidecar, settings.shortcuts);
}

// What the answer rests on: the findings the warnings list, the errors a denial names.
struct Verdict {
    std::vector<conflict::Finding> introduced; // about the changed object (see about())
    std::vector<conflict::Finding> existing;
    std::vector<conflict::Finding> own; // the object's own checks, then the newly hidden hosts
    std::size_t omitted = 0;
    bool introduces_error = false; // an introduced finding is an error
    std::string reason;            // the allow-conflict annotation, if any
};

// Sorts the comparison's findings by what they are about, adds the object's own checks, and
// records the codes and any allow-conflict reason in `d`.
Verdict reach_verdict(Comparison comparison, TouchedFlows touched, const Views& v,
                      const Candidate& c, const Request& r, AdmissionDecision& d) {
    Verdict out;
    model::ObjectRef ref{"", r.kind, c.ns, c.name};
    out.introduced = about(std::move(comparison.introduced), ref);
    out.existing = about(std::move(comparison.existing), ref);
    out.omitted = comparison.omitted;
    if (c.new_version) {
        for (auto& f : conflict::check_objects(*v.after, v.changed, c.target == Target::MeshPolicy))
            if (f.resource.kind == ref.kind && f.resource.name == ref.name &&
                f.resource.namespace_name == ref.namespace_name)
                out.own.push_back(std::move(f));
        report::describe_all(out.own);
    }
    const bool any_error =
        std::any_of(out.introduced.begin(), out.introduced.end(),
                    [](const auto& f) { return f.severity == conflict::Severity::Error; });
    for (auto& f : touched.newly_hidden)
        out.own.push_back(std::move(f));
    std::set<conflict::Code> codes = std::move(comparison.codes);
    for (const auto& f : out.own)
        codes.insert(f.code);
    for (auto code : codes)
        d.codes.emplace_back(conflict::to_string(code));

    const auto& annotated = c.removes ? r.old_object : r.object;
    out.reason = annotated ? annotated->allow_conflict : std::string();
    out.introduces_error = comparison.introduces_error && any_error;
    if (out.introduces_error && d.enforcement == Enforcement::Enforce && !out.reason.empty())
        d.allow_conflict_reason = out.reason;
    return out;
}

// The warnings after those already collected (`warnings`): introduced, existing, omitted, own;
// an allow-conflict override goes first.
std::vector<std::string> verdict_warnings(const Verdict& v, const AdmissionDecision& d,
                                          std::vector<std::string> warnings) {
    for (const auto& f : v.introduced)
        warnings.push_back(warning_for(f));
    for (const auto& f : v.existing)
        warnings.push_back(warning_for(f, "already failing before this change: "));
    if (v.omitted > 0)
        warnings.push_back(
            "[mtls-guard] " + std::to_string(v.omitted) +
            " more affected flows not listed; run mtls-guard analyze for all of them");
    for (const auto& f : v.own)
        warnings.push_back(warning_for(f));
    if (!d.allow_conflict_reason.empty())
        warnings.insert(warnings.begin(), clamp_warning("[mtls-guard] allowed despite conflicts: " +
                                                        std::string(allow_conflict_annotation) +
                                                        "=\"" + v.reason + "\""));
    return warnings;
}

// Denies in enforce mode when the change introduces an error and no reason overrides it;
// otherwise allows, with every finding as a warning.
AdmissionDecision respond_to_verdict(const Request& r, const AdmissionSettings& settings,
                                     AdmissionDecision d, const Verdict& v,
                                     std::vector<std::string> warnings) {
    warnings = verdict_warnings(v, d, std::move(warnings));
    const bool deny =
        v.introduces_error && d.enforcement == Enforcement::Enforce && v.reason.empty();
    if (!deny) {
        d.body = respond(r, settings, true, {}, 200, std::move(warnings));
        return d;
    }
    std::vector<const conflict::Finding*> errors;
    for (const auto& f : v.introduced)
        if (f.severity == conflict::Severity::Error)
            errors.push_back(&f);
    d.allowed = false;
    for (const auto* f : errors) {
        const std::string code(conflict::to_string(f->code));
        if (std::find(d.denial_codes.begin(), d.denial_codes.end(), code) == d.denial_codes.end())
            d.denial_codes.push_back(code);
    }
    std::string message = "mtls-guard: this change would break mTLS traffic: [" +
                          std::string(conflict::to_string(errors.front()->code)) + "] " +
                          errors.front()->message;
    if (errors.size() > 1)
        message += " (and " + std::to_string(errors.size() - 1) + " more, see warnings)";
    message += ". To apply it anyway, annotate the object with " +
               std::string(allow_conflict_annotation) + ": \"<reason>\"";
    d.body = respond(r, settings, false, message, 403, std::move(warnings));
    return d;
}

// The decision on one parsed review, step by step.
AdmissionDecision decide_request(const model::Snapshot& snapshot, const Request& r,
                                 const AdmissionSettings& settings) {
    AdmissionDecision d = undecided(r, settings);
    const Target target = target_of(r.kind);
    if (!decides_on(target, r.operation)) {
        d.body = respond(r, settings, true, {}, 200, {});
        return d;
    }
    if (target == Target::Namespace)
        return decide_namespace(snapshot, r, settings, std::move(d));
    std::vector<std::string> warnings;
    d.enforcement = object_enforcement(snapshot, r, target, settings, warnings);
    if (d.enforcement == Enforcement::Off) {
        d.body = respond(r, settings, true, {}, 200, std::move(warnings));
        return d;
    }

    const auto read = read_candidate(r, target);
    if (std::holds_alternative<NotOurs>(read)) {
        d.body = respond(r, settings, true, {}, 200, {});
        return d;
    }
    if (const auto* unreadable = std::get_if<Unreadable>(&read))
        return answer_unreadable(r, settings, std::move(d), unreadable->reason,
                                 std::move(warnings));
    const Candidate& candidate = std::get<Candidate>(read);

    Views views = apply_candidate(snapshot, r, candidate, settings.shortcuts);
    TouchedFlows touched = find_touched_flows(snapshot, views, candidate);
    Comparison comparison = compare_before_after(views, touched.touched, target, settings);
    const Verdict verdict =
        reach_verdict(std::move(comparison), std::move(touched), views, candidate, r, d);
    return respond_to_verdict(r, settings, std::move(d), verdict, std::move(warnings));
}

AdmissionDecision internal_error(const std::string& error) {
    AdmissionDecision d;
    d.http_status = 500;
    d.allowed = false;
    d.error = error;
    d.body = {{"error", d.error}};
    return d;
}

} // namespace

std::string_view to_string(Enforcement mode) noexcept {
    switch (mode) {
    case Enforcement::Enforce:
        return "enforce";
    case Enforcement::Warn:
        return "warn";
    case Enforcement::Off:
        return "off";
    }
    return "enforce";
}

std::optional<Enforcement> parse_enforcement(std::string_view text) noexcept {
    if (text == "enforce")
        return Enforcement::Enforce;
    if (text == "warn")
        return Enforcement::Warn;
    if (text == "off")
        return Enforcement::Off;
    return std::nullopt;
}

Enforcement at_most(Enforcement mode, Enforcement ceiling) noexcept {
    const auto strictness = [](Enforcement m) {
        switch (m) {
        case Enforcement::Enforce:
            return 2;
        case Enforcement::Warn:
            return 1;
        case Enforcement::Off:
            break;
        }
        return 0;
    };
    return strictness(ceiling) < strictness(mode) ? ceiling : mode;
}

std::string clamp_warning(std::string_view text) {
    std::string out;
    out.reserve(std::min(text.size(), max_warning_length));
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? ' ' : c);
    }
    if (out.size() > max_warning_length) {
        out.resize(max_warning_length - 3);
        // Do not cut a UTF-8 sequence in half.
        while (!out.empty() && (static_cast<unsigned char>(out.back()) & 0xC0) == 0x80)
            out.pop_back();
        if (!out.empty() && static_cast<unsigned char>(out.back()) >= 0xC0)
            out.pop_back();
        out += "...";
    }
    return out;
}

bool decides_on_kind(std::string_view kind) noexcept {
    return target_of(kind) != Target::Other;
}

AdmissionDecision decide(const model::Snapshot& snapshot, const ReviewRequest& request,
                         const AdmissionSettings& settings) noexcept {
    try {
        return decide_request(snapshot, request, settings);
    } catch (const std::exception& e) {
        return internal_error(std::string("internal error: ") + e.what());
    } catch (...) {
        return internal_error("internal error");
    }
}

AdmissionDecision decide(const model::Snapshot& snapshot, const json& review,
                         const AdmissionSettings& settings) noexcept {
    try {
        auto parsed = parse_review(review);
        if (auto* error = std::get_if<std::string>(&parsed)) {
            AdmissionDecision d;
            d.http_status = 400;
            d.error = *error;
            d.allowed = false;
            d.body = {{"error", *error}};
            return d;
        }
        return decide_request(snapshot, std::get<Request>(parsed), settings);
    } catch (const std::exception& e) {
        return internal_error(std::string("internal error: ") + e.what());
    } catch (...) {
        return internal_error("internal error");
    }
}

} // namespace mtlsguard::admission
