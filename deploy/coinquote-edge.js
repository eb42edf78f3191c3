// nginx's side of the edge (deploy/nginx.conf): which memcached key answers a quotes request.
//
// The app writes the documents (src/adapters/cache/edge_documents.py) under keys built by
// src/adapters/cache/keys.py; this file builds the same keys from the request. Change both
// together (tests/unit/test_edge_config.py runs this file under node when it can, and the e2e
// tier runs it under nginx).
//
// Eligible: GET or HEAD /api/v1/quotes?symbol=A[,B...], nothing else in the query string, each
// symbol 1-20 ASCII letters or digits, at most 100. The list is normalised as the app does
// (upper case, duplicates collapse, first occurrence kept). Anything else is the app's to answer
// (percent-encoding, `convert`, empty parts, ...): the edge only ever answers less, never more.

var crypto = require('crypto');

var SYMBOL = /^[A-Za-z0-9]{1,20}$/;
var NAME = /^[A-Za-z0-9_-]{1,32}$/;
var MAX_SYMBOLS = 100;
var VERSION = 'v2';

// `CACHE_NAMESPACE:BASE_CURRENCY`, as the app's settings name them (nginx.conf's `env` lines
// pass them through; unset, the app's defaults). Invalid: no edge at all.
function namespace() {
    var name = process.env.CACHE_NAMESPACE || 'coinquote';
    var base = (process.env.BASE_CURRENCY || 'USD').toUpperCase();
    if (!NAME.test(name) || !SYMBOL.test(base)) {
        return '';
    }
    return name + ':' + base;
}

// The normalised symbols of an eligible request, or null.
function symbols(r) {
    if (r.method !== 'GET' && r.method !== 'HEAD') {
        return null;
    }
    var args = r.variables.args || '';
    if (args.slice(0, 7) !== 'symbol=') {
        return null;
    }
    var parts = args.slice(7).split(',');
    if (parts.length > MAX_SYMBOLS) {
        return null;
    }
    var seen = {};
    var out = [];
    for (var i = 0; i < parts.length; i++) {
        if (!SYMBOL.test(parts[i])) {
            return null;  // also '&', '%', '=', an empty part
        }
        var symbol = parts[i].toUpperCase();
        if (!seen[symbol]) {
            seen[symbol] = true;
            out.push(symbol);
        }
    }
    return out;
}

// The digest naming one normalised list (edge_list_digest in cache_keys.py).
function digest(list) {
    return crypto.createHash('sha256').update(list.join(',')).digest('hex');
}

// js_set $coinquote_edge_key: the key of the request's document, "" when it is not eligible.
// One symbol: `NS:edge:v2:SYMBOL`; several: `NS:edge:v2:list:<sha256 of the normalised list>`.
function key(r) {
    var ns = namespace();
    var list = symbols(r);
    if (!ns || list === null) {
        return '';
    }
    var prefix = ns + ':edge:' + VERSION + ':';
    return list.length === 1 ? prefix + list[0] : prefix + 'list:' + digest(list);
}

export default {key, digest, symbols};
