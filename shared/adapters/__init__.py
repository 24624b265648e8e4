"""Adapters: Dataverse Web API, Azure Table Storage, Service Bus, tokens."""
