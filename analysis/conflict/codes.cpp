// The finding codes of the public catalogue, their severities and names.
#include "analysis/conflict/codes.hpp"

namespace mtlsguard::conflict {

std::string_view to_string(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
        return "MTG101";
    case Code::MTG102:
        return "MTG102";
    case Code::MTG103:
        return "MTG103";
    case Code::MTG104:
        return "MTG104";
    case Code::MTG105:
        return "MTG105";
    case Code::MTG106:
        return "MTG106";
    case Code::MTG107:
        return "MTG107";
    case Code::MTG108:
        return "MTG108";
    case Code::MTG201:
        return "MTG201";
    case Code::MTG202:
        return "MTG202";
    case Code::MTG203:
        return "MTG203";
    case Code::MTG204:
        return "MTG204";
    case Code::MTG205:
        return "MTG205";
    case Code::MTG206:
        return "MTG206";
    case Code::MTG207:
        return "MTG207";
    case Code::MTG208:
        return "MTG208";
    case Code::MTG209:
        return "MTG209";
    case Code::MTG210:
        return "MTG210";
    case Code::MTG211:
        return "MTG211";
    case Code::MTG212:
        return "MTG212";
    case Code::MTG213:
        return "MTG213";
    }
    return "MTG000";
}

std::string_view to_string(Severity severity) noexcept {
    switch (severity) {
    case Severity::Error:
        return "error";
    case Severity::Warning:
        return "warning";
    case Severity::Info:
        return "info";
    }
    return "info";
}

Severity severity_of(Code code) noexcept {
    switch (code) {
    case Code::MTG101:
    case Code::MTG102:
    case Code::MTG103:
    case Code::MTG104:
    case Code::MTG105:
    case Code::MTG106:
    case Code::MTG107:
    case Code::MTG108:
        return Severity::Error;
    case Code::MTG201:
    case Code::MTG202:
    case Code::MTG203:
    case Code::MTG204:
    case Code::MTG205:
    case Code::MTG209:
    case Code::MTG210:
    case Code::MTG211:
    case Code::MTG212:
        return Severity::Warning;
    case Code::MTG206:
    case Code::MTG207:
    case Code::MTG208:
    case Code::MTG213:
        return Severity::Info;
    }
    return Severity::Info;
}

} // namespace mtlsguard::conflict
