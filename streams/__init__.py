"""The Faust worker: an agent per domain, the sync pipeline, reconciler and outbox timers."""
