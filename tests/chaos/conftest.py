"""Chaos: the real processes broken on purpose. Each scenario prints its figures; the README's
reliability section quotes them."""

from tests.cluster import chaos_database, cluster, report  # noqa: F401 - fixtures
