"""The CoinMarketCap credit budget shared by every process: the CreditGovernor port.

One concern per module: `board` (the counters and notes the governor keeps, over memcached or in
process memory; the database's board is `src/adapters/sql/budget_board.py`), `notes` (the text
of the key-info and verdict notes shared on the board), `periods` (when the minute, the day and
the month end), `usage` (the /usage figures) and `governor` (the port, deciding by the spending
rules of `src/domain/spending.py`).
"""
