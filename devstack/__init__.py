"""The local stack: real stand-ins for both clouds, started on loopback without Docker."""
