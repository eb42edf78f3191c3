"""Adapters: the domain's ports implemented for CoinMarketCap, SQL databases and caches."""
