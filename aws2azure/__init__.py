"""The aws2azure operator command line."""
