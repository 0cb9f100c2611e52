"""Chaos: the real processes broken on purpose. Each scenario prints its figures; the
documentation's reliability page (docs/reliability.md) quotes them."""

from tests.cluster import chaos_database, cluster, report  # noqa: F401 - fixtures
