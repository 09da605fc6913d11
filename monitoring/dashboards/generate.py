"""dlnet's Grafana dashboards as code (grafana-foundation-sdk, pinned in pyproject.toml).

Run `make dashboards` (or `python monitoring/dashboards/generate.py`) to regenerate the versioned JSON in
monitoring/dashboards/json/; `--check` exits 1 when the committed JSON differs from the code.

Every query filters on `environment` (SDF's dashboards do the same) and, where it makes sense, on
`validator`; the Prometheus datasource is referenced by the fixed uid the provisioning file gives it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

OUT_DIR = Path(__file__).resolve().parent / "json"
DATASOURCE_UID = "dlnet-prometheus"
DS = common.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["dlnet", "stellar"]
# The paper's healthy band for ledger close time (Fig. 5) and the SLO the alert rules use.
CLOSE_TIME_LOW_S = 3
CLOSE_TIME_SLO_S = 10

ENV = 'environment=~"$environment"'
ENV_V = 'environment=~"$environment", validator=~"$validator"'


def q(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS).range()
    return query.legend_format(legend) if legend else query


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def value_text(mapping: dict[str, tuple[str, str]]) -> list[dm.ValueMap]:
    return [dm.ValueMap(options={k: dm.ValueMappingResult(text=t, color=c) for k, (t, c) in mapping.items()})]


def stat_panel(title: str, expr: str, *, unit: str = "none", legend: str = "", desc: str = "") -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .with_target(q(expr, legend))
        .unit(unit)
        .height(4)
        .span(4)
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]))
    )
    return panel


def ts_panel(title: str, *targets: prometheus.Dataquery, unit: str = "none", desc: str = "", w: int = 12):
    panel = (
        timeseries.Panel()
        .title(title)
        .description(desc)
        .datasource(DS)
        .unit(unit)
        .height(8)
        .span(w)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            cb.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs([])
        )
    )
    for t in targets:
        panel = panel.with_target(t)
    return panel


def variable(name: str, label: str, query: str, *, multi: bool = True) -> db.QueryVariable:
    var = (
        db.QueryVariable(name)
        .label(label)
        .query(query)
        .datasource(DS)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        var = var.multi(True).include_all(True).all_value(".*")
    return var


ENVIRONMENT_VAR = variable("environment", "Environment", "label_values(dlnet_validator_up, environment)")


def base(uid: str, title: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone("utc")
        .refresh("30s")
        .time("now-1h", "now")
        .readonly()
    )


def close_time_percentiles(sel: str) -> timeseries.Panel:
    def pct(p: float, ref: str) -> prometheus.Dataquery:
        rate = f"rate(dlnet_ledger_close_seconds_bucket{{{sel}}}[$__rate_interval])"
        return q(
            f"histogram_quantile({p}, sum by (le) ({rate}))",
            f"p{round(p * 100)}",
            ref,
        )

    return (
        ts_panel(
            f"Ledger close time percentiles vs the {CLOSE_TIME_LOW_S}-{CLOSE_TIME_SLO_S} s target band",
            pct(0.5, "A"),
            pct(0.95, "B"),
            pct(0.99, "C"),
            unit="s",
            desc="Time between ledger closes (paper Fig. 5: healthy 3-10 s). Shaded: below the band (blue), "
            "in the band (green), above the SLO (red). The p95 alert fires above the SLO.",
        )
        .min(0)
        .thresholds(thresholds((None, "blue"), (CLOSE_TIME_LOW_S, "green"), (CLOSE_TIME_SLO_S, "red")))
        .thresholds_style(cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE_AND_AREA))
    )


def overview() -> db.Dashboard:
    d = (
        base(
            "dlnet-overview",
            "dlnet / Network overview",
            "Is every validator synced, do ledgers close in 3-10 s, does the transaction-set size stretch the "
            "close time, does the quorum hold.",
        )
        .with_variable(ENVIRONMENT_VAR)
        .with_variable(
            variable(
                "validator", "Validator", 'label_values(dlnet_validator_up{environment=~"$environment"}, validator)'
            )
        )
    )
    d = d.with_row(db.Row("Network"))
    d = d.with_panel(
        stat_panel(
            "Validators synced",
            f"sum(dlnet_validator_synced{{{ENV_V}}})",
            legend="synced",
            desc="Validators whose stellar-core state is Synced!",
        )
        .with_target(q(f"count(dlnet_validator_up{{{ENV_V}}})", "validators", "B"))
        .thresholds(thresholds((None, "red"), (1, "green")))
    )
    d = d.with_panel(stat_panel("Latest ledger", f"max(dlnet_ledger_sequence{{{ENV_V}}})"))
    d = d.with_panel(
        stat_panel(
            "Ledger age",
            f"max(dlnet_ledger_age_seconds{{{ENV_V}}})",
            unit="s",
            desc="Seconds since the last close, worst validator. Alert above 30 s.",
        ).thresholds(thresholds((None, "green"), (CLOSE_TIME_SLO_S, "orange"), (30, "red")))
    )
    d = d.with_panel(stat_panel("Protocol version", f"max(dlnet_ledger_protocol_version{{{ENV_V}}})"))
    d = d.with_panel(
        stat_panel(
            "Max tx set size (ops)",
            f"max(dlnet_ledger_max_tx_set_size{{{ENV_V}}})",
            desc="Ledger header maxTxSetSize: operations per ledger (protocol >= 11).",
        )
    )
    d = d.with_panel(
        stat_panel(
            "Quorum intersection",
            f"min(dlnet_quorum_intersection{{{ENV_V}}})",
            desc="Do all quorums intersect (stellar-core transitive analysis)? LOST means a fork is possible.",
        ).mappings(value_text({"1": ("yes", "green"), "0": ("LOST", "red")}))
    )
    d = d.with_row(db.Row("Ledger close time"))
    d = d.with_panel(close_time_percentiles(ENV_V))
    d = d.with_panel(
        heatmap.Panel()
        .title("Ledger close time distribution")
        .description("Closes per histogram bucket (dlnet_ledger_close_seconds, buckets 1-60 s).")
        .datasource(DS)
        .with_target(
            q(
                f"sum by (le) (increase(dlnet_ledger_close_seconds_bucket{{{ENV_V}}}[$__rate_interval]))", "{{le}}"
            ).format(pm.PromQueryFormat.HEATMAP)
        )
        .calculate(False)
        .height(8)
        .span(8)
    )
    d = d.with_panel(
        stat_panel(
            f"Ledgers closed within {CLOSE_TIME_SLO_S} s",
            f'sum(increase(dlnet_ledger_close_seconds_bucket{{{ENV_V}, le=~"{CLOSE_TIME_SLO_S}(\\\\.0)?"}}[$__range])) '
            f"/ sum(increase(dlnet_ledger_close_seconds_count{{{ENV_V}}}[$__range]))",
            unit="percentunit",
            desc="Share of ledgers over the dashboard's time range that closed within the SLO.",
        )
        .thresholds(thresholds((None, "red"), (0.95, "orange"), (0.99, "green")))
        .height(8)
    )
    d = d.with_row(db.Row("Load: does the transaction-set size stretch the close time?"))
    d = d.with_panel(
        ts_panel(
            "Operations per ledger vs mean close time",
            q(f"max(dlnet_ledger_operations_per_ledger{{{ENV_V}}})", "operations per ledger", "A"),
            q(f"max(dlnet_ledger_max_tx_set_size{{{ENV_V}}})", "max tx set size", "B"),
            q(
                f"sum(rate(dlnet_ledger_close_seconds_sum{{{ENV_V}}}[$__rate_interval])) "
                f"/ sum(rate(dlnet_ledger_close_seconds_count{{{ENV_V}}}[$__rate_interval]))",
                "mean close time",
                "C",
            ),
            desc="If close time rises with operations per ledger, lower the max tx set size (dlnet upgrade).",
        ).override_by_name(
            "mean close time",
            [
                dm.DynamicConfigValue(id_val="unit", value="s"),
                dm.DynamicConfigValue(id_val="custom.axisPlacement", value="right"),
            ],
        )
    )
    d = d.with_panel(
        ts_panel(
            "Transactions and operations per second",
            q(f"max(rate(dlnet_ledger_transactions_total{{{ENV_V}}}[$__rate_interval]))", "transactions/s", "A"),
            q(f"max(rate(dlnet_ledger_operations_total{{{ENV_V}}}[$__rate_interval]))", "operations/s", "B"),
            unit="ops",
        )
    )
    d = d.with_row(db.Row("Validators and quorum"))
    d = d.with_panel(
        statetimeline.Panel()
        .title("Validator state")
        .description("Synced! or not, per validator (dlnet_validator_synced).")
        .datasource(DS)
        .with_target(q(f"dlnet_validator_synced{{{ENV_V}}}", "{{validator}}"))
        .mappings(value_text({"1": ("synced", "green"), "0": ("not synced", "red")}))
        .height(8)
        .span(12)
    )
    d = d.with_panel(
        ts_panel(
            "Authenticated peers",
            q(f"dlnet_validator_peers{{{ENV_V}}}", "{{validator}}"),
            desc="Each validator should reach every other validator.",
            w=6,
        )
    )
    d = d.with_panel(
        ts_panel(
            "Quorum: fail_at and missing",
            q(f"dlnet_quorum_fail_at{{{ENV_V}}}", "{{validator}} fail_at", "A"),
            q(f"dlnet_quorum_missing{{{ENV_V}}}", "{{validator}} missing", "B"),
            desc="fail_at: validator failures that would halt this node's quorum (alert at or below the "
            "tolerated failures).",
            w=6,
        )
    )
    return d


def validator_detail() -> db.Dashboard:
    sel = ENV_V
    d = (
        base(
            "dlnet-validator",
            "dlnet / Validator detail",
            "One validator: state, ledger header, quorum, stellar-core's own timers (SDF exporter naming).",
        )
        .with_variable(ENVIRONMENT_VAR)
        .with_variable(
            variable(
                "validator",
                "Validator",
                'label_values(dlnet_validator_up{environment=~"$environment"}, validator)',
                multi=False,
            )
        )
    )
    d = d.with_row(db.Row("State"))
    d = d.with_panel(
        stat_panel("Admin port answers", f"min(dlnet_validator_up{{{sel}}})").mappings(
            value_text({"1": ("up", "green"), "0": ("DOWN", "red")})
        )
    )
    d = d.with_panel(
        stat_panel("Synced", f"min(dlnet_validator_synced{{{sel}}})").mappings(
            value_text({"1": ("Synced!", "green"), "0": ("not synced", "red")})
        )
    )
    d = d.with_panel(stat_panel("Ledger", f"max(dlnet_ledger_sequence{{{sel}}})"))
    d = d.with_panel(stat_panel("Ledger age", f"max(dlnet_ledger_age_seconds{{{sel}}})", unit="s"))
    d = d.with_panel(stat_panel("Peers", f"max(dlnet_validator_peers{{{sel}}})"))
    d = d.with_panel(stat_panel("Quorum fail_at", f"min(dlnet_quorum_fail_at{{{sel}}})"))
    d = d.with_row(db.Row("Ledger header"))
    d = d.with_panel(stat_panel("Protocol version", f"max(dlnet_ledger_protocol_version{{{sel}}})"))
    d = d.with_panel(
        stat_panel(
            "Base fee",
            f"max(dlnet_ledger_base_fee_stroops{{{sel}}})",
            unit="none",
            desc="Stroops (1 XLM = 10^7 stroops).",
        )
    )
    d = d.with_panel(
        stat_panel("Base reserve", f"max(dlnet_ledger_base_reserve_stroops{{{sel}}}) / 1e7", unit="none", desc="XLM.")
    )
    d = d.with_panel(stat_panel("Max tx set size", f"max(dlnet_ledger_max_tx_set_size{{{sel}}})"))
    d = d.with_panel(
        stat_panel(
            "Armed upgrades",
            f"sum(dlnet_upgrade_armed{{{sel}}})",
            desc="Upgrades this validator is armed with (dlnet upgrade arms every validator).",
        )
    )
    d = d.with_panel(
        stat_panel("Quorum agree / missing", f"max(dlnet_quorum_agree{{{sel}}})", legend="agree").with_target(
            q(f"max(dlnet_quorum_missing{{{sel}}})", "missing", "B")
        )
    )
    d = d.with_row(db.Row("Timing"))
    d = d.with_panel(close_time_percentiles(sel))
    d = d.with_panel(
        ts_panel(
            "Ledger apply time (stellar-core ledger.ledger.close)",
            q(f'stellar_core_ledger_ledger_close_seconds{{{sel}, quantile="0.99"}}', "p99", "A"),
            q(f'stellar_core_ledger_ledger_close_seconds{{{sel}, quantile="0.75"}}', "p75", "B"),
            unit="s",
            desc="Time to apply a ledger, excluding consensus (SDF exporter's summary of the medida timer).",
        )
    )
    d = d.with_panel(
        ts_panel(
            "Ledger sequence (stellar-core and dlnet exporter)",
            q(f"stellar_core_ledger_num{{{sel}}}", "stellar-core", "A"),
            q(f"dlnet_ledger_sequence{{{sel}}}", "dlnet exporter", "B"),
            desc="Both exporters read the same validator: the lines should coincide.",
        )
    )
    d = d.with_panel(
        ts_panel(
            "History publishing",
            q(f"increase(stellar_core_history_publish_success{{{sel}}}[$__rate_interval])", "published", "A"),
            q(f"increase(stellar_core_history_publish_failure{{{sel}}}[$__rate_interval])", "failed", "B"),
            desc="Checkpoints published to this validator's archive (every 64 ledgers; 8 when accelerated).",
        )
    )
    d = d.with_panel(
        ts_panel(
            "Exporter scrape duration",
            q(f"dlnet_exporter_scrape_duration_seconds{{{ENV}}}", "{{target}}"),
            unit="s",
        )
    )
    return d


def ipfs_swarm() -> db.Dashboard:
    sel = f'job="ipfs", {ENV}'
    d = base(
        "dlnet-ipfs",
        "dlnet / IPFS swarm",
        "The private kubo swarm that stores model checkpoints: nodes up, peers, transfer, RPC.",
    ).with_variable(ENVIRONMENT_VAR)
    d = d.with_panel(
        stat_panel("kubo nodes up", f"sum(up{{{sel}}})", legend="up").with_target(
            q(f"count(up{{{sel}}})", "configured", "B")
        )
    )
    d = d.with_panel(
        stat_panel(
            "Nodes without peers",
            f"count(up{{{sel}}} == 1 unless on(instance) (sum by (instance) (ipfs_p2p_peers_total) > 0)) or vector(0)",
            desc="A bootstrap node with no peer does not replicate checkpoints (alert after 5 min).",
        ).thresholds(thresholds((None, "green"), (1, "red")))
    )
    d = d.with_panel(
        stat_panel(
            "kubo nodes per version",
            f"count by (version) (ipfs_info{{{sel}}})",
            legend="{{version}}",
            desc="Every node should run the kit's pinned kubo.",
        ).text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    )
    d = d.with_panel(
        ts_panel(
            "Peers per node",
            q(
                f"sum by (instance_name) (ipfs_p2p_peers_total{{{sel}}}) or sum by (instance_name) (0 * up{{{sel}}})",
                "{{instance_name}}",
            ),
            desc="Connected swarm peers (kubo exports none while a node has no peer: shown as 0).",
        )
    )
    d = d.with_panel(
        ts_panel(
            "libp2p connections",
            q(
                f'sum by (instance_name, dir) (libp2p_rcmgr_connections{{{sel}, scope="system"}})',
                "{{instance_name}} {{dir}}",
            ),
        )
    )
    d = d.with_panel(
        ts_panel(
            "Bitswap traffic",
            q(
                f"sum by (instance_name) (rate(ipfs_bitswap_recv_all_blocks_bytes_sum{{{sel}}}[$__rate_interval]))",
                "{{instance_name}} received",
                "A",
            ),
            q(
                f"sum by (instance_name) (rate(ipfs_bitswap_sent_all_blocks_bytes_sum{{{sel}}}[$__rate_interval]))",
                "{{instance_name}} sent",
                "B",
            ),
            unit="Bps",
        )
    )
    d = d.with_panel(
        ts_panel(
            "RPC requests",
            q(
                f"sum by (instance_name) (rate(ipfs_http_requests_total{{{sel}}}[$__rate_interval]))",
                "{{instance_name}}",
            ),
            unit="reqps",
        )
    )
    d = d.with_panel(
        ts_panel("Resident memory", q(f"process_resident_memory_bytes{{{sel}}}", "{{instance_name}}"), unit="bytes")
    )
    return d


def horizon() -> db.Dashboard:
    sel = f'{ENV}, horizon=~"$horizon"'
    d = (
        base(
            "dlnet-horizon",
            "dlnet / Horizon",
            "Horizon as the dlnet exporter sees it: up, ingestion lag behind the validators, response time.",
        )
        .with_variable(ENVIRONMENT_VAR)
        .with_variable(
            variable("horizon", "Horizon", 'label_values(dlnet_horizon_up{environment=~"$environment"}, horizon)')
        )
    )
    d = d.with_panel(
        stat_panel("Horizon up", f"min(dlnet_horizon_up{{{sel}}})")
        .mappings(value_text({"1": ("up", "green"), "0": ("DOWN", "red")}))
        .span(6)
    )
    d = d.with_panel(
        stat_panel(
            "Ingestion lag",
            f"max(dlnet_horizon_ingest_lag_ledgers{{{sel}}})",
            desc="Ledgers closed by the validators but not yet ingested by Horizon.",
        )
        .thresholds(thresholds((None, "green"), (3, "orange"), (10, "red")))
        .span(6)
    )
    d = d.with_panel(
        stat_panel(
            "Response time",
            f'max(dlnet_exporter_scrape_duration_seconds{{{ENV}, target=~"$horizon"}})',
            unit="s",
            desc="How long the dlnet exporter's last probe of Horizon took (root resource and /ledgers).",
        )
        .thresholds(thresholds((None, "green"), (1, "orange"), (2, "red")))
        .span(6)
    )
    d = d.with_panel(
        stat_panel(
            "Validators' latest ledger",
            f"max(dlnet_ledger_sequence{{{ENV}}})",
            desc="What Horizon should have ingested, minus the lag.",
        ).span(6)
    )
    d = d.with_panel(
        ts_panel(
            "Ingestion lag (ledgers)",
            q(f"dlnet_horizon_ingest_lag_ledgers{{{sel}}}", "{{horizon}}"),
            desc="Alert above 10 ledgers for 5 minutes.",
        )
    )
    d = d.with_panel(
        ts_panel(
            "Response time of the exporter's probe",
            q(f'dlnet_exporter_scrape_duration_seconds{{{ENV}, target=~"$horizon"}}', "{{target}}"),
            unit="s",
        )
    )
    return d


DASHBOARDS: dict[str, Callable[[], db.Dashboard]] = {
    "dlnet-overview": overview,
    "dlnet-validator": validator_detail,
    "dlnet-ipfs": ipfs_swarm,
    "dlnet-horizon": horizon,
}


def render(uid: str) -> str:
    """The dashboard's JSON exactly as written to disk (stable key order, trailing newline)."""
    built = DASHBOARDS[uid]().build()
    data = json.loads(json.dumps(built, cls=JSONEncoder))
    for i, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = i
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON files")
    parser.add_argument("--check", action="store_true", help="fail if the files on disk are out of date")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    stale = []
    for uid in DASHBOARDS:
        path = args.out / f"{uid}.json"
        text = render(uid)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("dashboards out of date (run `make dashboards`): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
