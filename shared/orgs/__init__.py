"""One deployment serving many Dataverse orgs (issue #15): the org registry and each org's settings."""
