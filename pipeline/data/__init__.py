"""The ground: the workspace, ingest, the store and its splits, lag features, metrics, checks."""
