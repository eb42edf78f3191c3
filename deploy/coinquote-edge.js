// nginx's side of the edge for the spellings deploy/nginx.conf leaves to code: which memcached key
// answers a quotes request written in any case, with a symbol twice, or too long to name itself.
//
// nginx.conf names the canonical spelling (capitals, no repeats, at most LIST_NAME_MAX
// characters) itself, with no code: this file runs only for the others, and builds the same keys
// as the app (src/adapters/cache/keys.py) and as nginx.conf. Change the three together
// (tests/unit/test_edge_config.py pins what they share; tests/e2e/test_edge.py runs this file
// under nginx, every spelling against the app's answer).
//
// Eligible: GET or HEAD /api/v1/quotes?symbol=A[,B...], nothing else in the query string, each
// symbol 1-20 ASCII letters or digits, at most 100. The list is normalised as the app does
// (upper case, duplicates collapse, first occurrence kept). Anything else is the app's to answer
// (percent-encoding, `convert`, empty parts, ...): the edge only ever answers less, never more.

var crypto = require('crypto');

var ELIGIBLE = /^symbol=[A-Za-z0-9]{1,20}(,[A-Za-z0-9]{1,20}){0,99}$/;
var NAMESPACE = /^[A-Za-z0-9_-]{1,32}:[A-Z0-9]{1,20}$/;
var LIST_NAME_MAX = 180;
var VERSION = 'v2';

// The normalised symbols of an eligible request, or null.
function symbols(r) {
    if (r.method !== 'GET' && r.method !== 'HEAD') {
        return null;
    }
    var args = r.variables.args || '';
    if (!ELIGIBLE.test(args)) {
        return null;  // also '&', '%', '=', an empty part, over 100 symbols
    }
    var parts = args.slice(7).toUpperCase().split(',');
    var seen = {};
    var out = [];
    for (var i = 0; i < parts.length; i++) {
        if (seen[parts[i]] !== true) {
            seen[parts[i]] = true;
            out.push(parts[i]);
        }
    }
    return out;
}

// The name of one normalised list (edge_list_name in keys.py): itself, or its SHA-256 when long.
function name(list) {
    var joined = list.join(',');
    if (joined.length <= LIST_NAME_MAX) {
        return joined;
    }
    return 'sha256-' + crypto.createHash('sha256').update(joined).digest('hex');
}

// js_set $coinquote_edge_normalised: the key of the request's document, "" when not eligible.
// One symbol: `NS:edge:v2:SYMBOL`; several: `NS:edge:v2:list:<name>`. NS is nginx.conf's
// $coinquote_namespace, `CACHE_NAMESPACE:BASE_CURRENCY` (invalid: no edge at all).
function key(r) {
    var ns = r.variables.coinquote_namespace || '';
    var list = symbols(r);
    if (!NAMESPACE.test(ns) || list === null) {
        return '';
    }
    var prefix = ns + ':edge:' + VERSION + ':';
    return list.length === 1 ? prefix + list[0] : prefix + 'list:' + name(list);
}

export default {key, name, symbols};
