"""A local fake of CoinMarketCap's Pro API, for integration and end-to-end tests and offline demos."""
