"""Destination transports: protocol, auth, timeouts. They return data or raise TransportError;
they never read mappings or rules and never write the database."""
