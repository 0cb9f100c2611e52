"""What the API's waiters and the metrics hear of a verification's change."""

from __future__ import annotations

from collections.abc import Iterable

from shared.kit import metrics
from shared.kit.changes import Change, ChangeFeed
from shared.verifications.domain import FINAL_VERIFICATION_STATUSES, Channel

_FINAL = frozenset(status.value for status in FINAL_VERIFICATION_STATUSES)


class CountedChangeFeed:
    """Counts the verifications that reached a final state as their notices go out: every
    change that ends one is committed, then published here, once."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed

    async def publish(self, changes: Iterable[Change]) -> None:
        changes = list(changes)
        for change in changes:
            if change.kind == "verification" and change.view is not None:
                status = change.view["status"]
                if status in _FINAL:
                    channel = change.view["channel"]
                    metrics.VERIFICATIONS_FINAL.labels(status=status, channel=channel).inc()
        await self._feed.publish(changes)


# Exported from the start, at zero: a rate over a series that does not exist yet is no rate.
for _status in FINAL_VERIFICATION_STATUSES:
    for _channel in Channel:
        metrics.VERIFICATIONS_FINAL.labels(status=_status.value, channel=_channel.value)
