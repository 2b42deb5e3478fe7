"""Inbound source kinds: how each platform signs, names and orders its webhooks.

Pure code (no ORM, no settings): the webhook view hands a kind the raw request and the
integration's secrets; the kind answers with the records it carries or a SourceError."""
