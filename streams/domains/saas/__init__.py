"""The saas domain (seed 001, supasaasy): app instances synced through connectors."""
