"""Loopback HTTP emulators for local runs and tests (Dataverse Web API, Twilio)."""
