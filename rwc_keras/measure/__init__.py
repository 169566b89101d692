"""What RWC measures, written once with `keras.ops` for every backend: `rwc`, `rwc_norm`,
`rwc_stats` and the per-layer `layer_stats` (the optional measures beside them)."""
