"""The quote domain: values, ports, errors and the retrieval rules. Standard library only."""
