"""The shared cache: the QuoteCache port over Flask-Caching, and what it writes for nginx.

One concern per module: `quote_cache` (the port: quotes, negative entries, fetch claims),
`keys` (the one place cache keys are built), `values` (the text of every entry, read strictly),
`rejects` (counting values that are not ours), `local` (the in-process backend), `memcached`
(the pymemcache backend: sharded servers, claims by CAS) and `edge_documents` (ready answers
that nginx serves straight from memcached).
"""
