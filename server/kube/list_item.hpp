// One item of a list page as the reflector parsed it, for a sink that decodes it in place.
#pragma once

#include "server/input/json_dom.hpp"

#include <string_view>

namespace mtlsguard::kube {

// Valid only during ReflectorSink::list_item_parsed: it points into the reflector's parse.
struct ListItem {
    input::DomNode object;        // an object; list items of built-in types have no apiVersion
    std::string_view api_version; // and kind, so these are the list's: what list_item's JSON
    std::string_view kind;        // object would be stamped with
};

} // namespace mtlsguard::kube
