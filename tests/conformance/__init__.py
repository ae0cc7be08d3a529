"""Autobahn|Testsuite conformance: ``make conformance`` runs it, directly and through nginx."""
