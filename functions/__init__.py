"""The Azure side: Function App blueprints (thin triggers) and the adapters they are wired to."""
