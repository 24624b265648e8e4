"""Dataverse-side provisioning of the channel: message table, tile, service endpoint, step (``channel provision``)."""
