"""The database: tables, and the ports kept in SQL (PostgreSQL in production, SQLite by default).

One concern per module: `orm` (the tables, the only ones), `guard` (driver errors -> StorageError,
shared by every module here), `quotes` (the QuoteRepository port), `history` (the SQL of price
history: bucketing and thinning), `lease` (the refresher's lease), `request_log` (requested
symbols) and `budget_board` (the credit governor's counters when there is no memcached).
"""
