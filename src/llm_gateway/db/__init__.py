"""Storage: table definitions, the async engine, migrations."""
