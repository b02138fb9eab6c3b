"""One SDK each; SDK errors become migration.errors types."""
