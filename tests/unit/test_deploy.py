"""The Grafana dashboard and the Prometheus rules in deploy/ speak of metrics that exist."""

from __future__ import annotations

import json
import re

import yaml

from tests.support import REPO, documented_metrics

_METRIC = re.compile(r"\btwostep_[a-z_]+")


def _names(expression: str) -> set[str]:
    return {re.sub(r"_(bucket|count|sum)$", "", name) for name in _METRIC.findall(expression)}


def test_the_dashboard_plots_documented_metrics_only() -> None:
    dashboard = json.loads((REPO / "deploy" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    plotted = set().union(*map(_names, expressions))
    documented = set(documented_metrics())
    assert plotted - documented == set()
    assert len(plotted) >= 0.8 * len(documented), documented - plotted


def test_the_alerts_cover_what_ops_must_hear_of_and_use_documented_metrics() -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus-alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert {
        "TwostepBacklogGrowing",
        "TwostepProviderErrorRate",
        "TwostepDecisionSlow",
        "TwostepSpendCapNear",
        "TwostepNoWorkerHeartbeat",
    } <= set(alerts)
    documented = set(documented_metrics())
    for name, rule in alerts.items():
        assert _names(rule["expr"]) and _names(rule["expr"]) <= documented, name
        assert rule["labels"]["severity"] in ("page", "warn") and rule["annotations"]["summary"]
    scrape = yaml.safe_load((REPO / "deploy" / "prometheus.yml").read_text())
    assert {job["job_name"] for job in scrape["scrape_configs"]} == {
        "twostep-api",
        "twostep-worker",
        "twostep-beat",
    }
