"""The `flask --app wsgi` commands: `refresh` (the refresher process) and `history prune`."""
