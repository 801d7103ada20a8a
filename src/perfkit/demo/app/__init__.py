"""The demo service: a support-ticket platform with a naive and an optimised variant of each endpoint."""
