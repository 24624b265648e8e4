"""Dataverse-side provisioning of the channel: message table, tile, service endpoint, step (``channel provision``);
with ``--rtj`` the real-time journeys custom channel (provisioning/rtj.py)."""
