"""Leaderboard data: frozen definitions (``definitions/<id>-v<N>.toml``) and committed entry
bundles (``bundles/<id>-v<N>/<agent>.json``). See ``SCHEMA.md`` for the bundle format."""
