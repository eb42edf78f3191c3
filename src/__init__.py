"""coinquote: an HTTP API in front of CoinMarketCap."""
