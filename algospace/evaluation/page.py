"""The report page: one self-contained HTML file with every figure and the PNGs inline.

:func:`write_html` turns the content of ``report.json`` (built by
:mod:`algospace.evaluation.report`) and the PNGs of :mod:`algospace.evaluation.plots`
into ``report.html``, which opens offline.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

from algospace.evaluation.plots import strategy_label
from algospace.evaluation.table import counted

__all__ = ["write_html"]

_ROWS = (("net_pnl", "net P&L ($)", "{:,.0f}"),
         ("total_return", "net P&L / capital", "{:.2%}"),
         ("annual_return", "annual return (× 252 days)", "{:.2%}"),
         ("sharpe", "Sharpe (daily)", "{:.2f}"), ("sortino", "Sortino (daily)", "{:.2f}"),
         ("bar_sharpe", "Sharpe (bars)", "{:.2f}"), ("calmar", "Calmar", "{:.2f}"),
         ("max_drawdown", "max drawdown", "{:.2%}"),
         ("max_drawdown_days", "drawdown duration (days)", "{:d}"),
         ("trades", "trades", "{:d}"), ("win_rate", "win rate (per trade)", "{:.1%}"),
         ("profit_factor", "profit factor", "{:.2f}"), ("avg_trade", "average trade ($)",
                                                        "{:,.0f}"),
         ("turnover", "turnover (contracts/day)", "{:.1f}"), ("exposure", "exposure", "{:.1%}"),
         ("costs", "costs paid ($)", "{:,.0f}"),
         ("probabilistic_sharpe", "PSR (Sharpe > 0)", "{:.2f}"),
         ("ruin_time", "ruined at", "{}"))


def _fmt(value: Any, pattern: str) -> str:
    """A figure for the table ('—' when missing or not finite)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—" if value is None or math.isnan(value) else ("∞" if value > 0 else "−∞")
    try:
        return pattern.format(value)
    except (ValueError, TypeError):
        return str(value)


def _oracle_html(report: dict[str, Any]) -> str:
    """The oracles' dollar P&L and the agents' capture of them (built-in market)."""
    if "oracles" not in report:
        return ""
    a = report["agents"]
    rows = "".join(
        f"<tr><td>{layer}</td><td>{_fmt(o['net_pnl'], '{:,.0f}')}</td>"
        f"<td>{_fmt(o['expected_pnl'], '{:,.0f}')}</td><td>{_fmt(o['sharpe'], '{:.2f}')}</td>"
        f"<td>{o['trades']}</td></tr>" for layer, o in report["oracles"].items())
    return (f"<p><b>Oracles</b> (know the planted drifts; same bars, limit, costs and ruin "
            f"rule). The agents' net P&L is <b>{_fmt(a.get('capture_of_oracle'), '{:.1%}')}"
            f"</b> of the {report['oracle_layer']} oracle's and "
            f"{_fmt(a.get('capture_of_joint_oracle'), '{:.1%}')} of the joint oracle's; in "
            f"expectation (planted drifts only, free of this draw's noise) "
            f"<b>{_fmt(a.get('expected_capture'), '{:.1%}')}</b> and "
            f"{_fmt(a.get('expected_capture_of_joint_oracle'), '{:.1%}')}. Deflated Sharpe "
            f"ratio {_fmt(a.get('deflated_sharpe'), '{:.2f}')} "
            f"({report['selection']['effective_trials']:.1f} effective trials).</p>"
            f"<table><tr><th>oracle</th><th>net P&L ($)</th><th>expected net P&L ($)</th>"
            f"<th>Sharpe</th><th>trades</th></tr>{rows}</table>")


_ATTRIBUTION = (("layer", "layer that moved the target"), ("side", "long / short"),
                ("regime", "hidden regime"), ("volatility", "volatility tercile"),
                ("weekday", "weekday"), ("hour", "session hour"))


def _breakdown_html(report: dict[str, Any]) -> str:
    """The cost sensitivity and the attribution tables."""
    sens, parts = report["cost_sensitivity"], report["attribution"]
    rows = "".join(
        f"<tr><td>{r['multiple']:g}×</td><td>{_fmt(r['net_pnl'], '{:,.0f}')}</td>"
        f"<td>{_fmt(r['sharpe'], '{:.2f}')}</td><td>{r['trades']}</td>"
        f"<td>{_fmt(r['costs'], '{:,.0f}')}</td><td>{'yes' if r['ruined'] else ''}</td></tr>"
        for r in sens["rows"])
    tables = []
    for key, title in _ATTRIBUTION:
        if key in parts:
            cells = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(v['pnl'], '{:,.2f}')}"
                            f"</td><td>{v['bars']:,}</td></tr>" for k, v in parts[key].items())
            tables.append(f"<table style='display:inline-table;vertical-align:top;"
                          f"margin-right:1em'><tr><th>{title}</th><th>net P&L ($)</th>"
                          f"<th>bars</th></tr>{cells}</table>")
    return (f"<p><b>Cost sensitivity</b>: the agents' decisions re-run through the account "
            f"with commission and slippage × multiple (no re-decision; tiles and ruin stop "
            f"as above). Break-even: {html.escape(sens['break_even_note'])}.</p>"
            f"<table><tr><th>costs</th><th>net P&L ($)</th><th>Sharpe (daily)</th>"
            f"<th>trades</th><th>costs paid ($)</th><th>ruined</th></tr>{rows}</table>"
            f"<p><b>P&L attribution</b> of the net P&L "
            f"(${parts['total_net_pnl']:,.2f}; each table sums to it): per bar, the change "
            f"in equity over the bar, costs charged on it included.</p>{''.join(tables)}")


def _uncertainty_html(report: dict[str, Any], image: str) -> str:
    """The consensus calibration table and plot, the threshold choice and gated vs ungated."""
    u = report.get("uncertainty")
    if not u:
        return ""
    cal, side = u["calibration"], u["side_by_side"]
    rows = "".join(
        f"<tr><td>{b['bin']}</td><td>{b['decisions']:,}</td>"
        f"<td>{_fmt(b['consensus_low'], '{:.3f}')}–{_fmt(b['consensus_high'], '{:.3f}')}</td>"
        f"<td>{_fmt(b['mean_consensus'], '{:.3f}')}</td><td>{_fmt(b['hit_rate'], '{:.3f}')}"
        f"</td><td>{_fmt(b['hit_rate_se'], '{:.3f}')}</td><td>{b['trades_opened']:,}</td>"
        f"<td>{_fmt(b['mean_trade_pnl'], '{:,.1f}')}</td></tr>" for b in cal["bins"])
    grid = "".join(f"<tr><td>{'on' if v['synergy_gate'] else 'off'}</td>"
                   f"<td>{v['threshold']:g}</td><td>{v['regime_adjustment']:g}</td>"
                   f"<td>{v['drawdown_adjustment']:g}</td><td>{v['trades']:,}</td>"
                   f"<td>{_fmt(v['net_pnl'], '{:,.0f}')}</td>"
                   f"<td>{_fmt(v['sharpe'], '{:.2f}')}</td></tr>" for v in u["validation"])
    g = u["gates"]
    chosen = (f"gate 1 {'enforced' if g['synergy_gate'] else 'recorded only'}, gate 2's "
              f"threshold {g['threshold']:g}, regime adjustment +{g['regime_adjustment']:g}"
              f", drawdown adjustment +{g['drawdown_adjustment']:g} per %")
    choice = (f"chosen on the validation split (gate 1 on or off × thresholds "
              f"{', '.join(f'{t:g}' for t in u['grid'])}, then the adjustments; "
              f"{len(u['validation'])} settings) by {html.escape(u['criterion'])}"
              if u["threshold_chosen_on"] == "val" else
              "as configured (not chosen on validation)")
    figures = (("trades", "trades", "{:,}"), ("net P&L ($)", "net_pnl_usd", "{:,.0f}"),
               ("P&L per trade ($)", "pnl_per_trade_usd", "{:,.1f}"),
               ("Sharpe (daily)", "sharpe", "{:.2f}"))
    side_rows = "".join(f"<tr><td>{label}</td><td>{_fmt(side['ungated_' + key], p)}</td>"
                        f"<td>{_fmt(side['gated_' + key], p)}</td></tr>"
                        for label, key, p in figures)
    verdict = ("the gated team lost money" if side["gated_net_pnl_usd"] < 0 else
               "the gated team did not lose money")
    return (f"<h2>Uncertainty: is the MC consensus calibrated, do the gates pay?</h2>"
            f"<p><b>Calibration</b> of the ungated team's decisions on the {u['split']} split "
            f"({cal['decisions']:,} decisions with a direction; {cal['left_out']:,} left out: "
            f"no direction, or the horizon past the data): decisions sorted by MC consensus "
            f"into {len(cal['bins'])} bins of equal count; a hit is a decision whose "
            f"consensus direction matched the next {cal['horizon_minutes']}-minute move. "
            f"ECE (Σ bin share × |hit rate − mean consensus|) <b>{cal['ece']:.3f}</b>; top "
            f"bin minus bottom bin hit rate {_fmt(cal['top_minus_bottom_hit_rate'], '{:+.3f}')}"
            f" ± {_fmt(cal['top_minus_bottom_se'], '{:.3f}')} (SE).</p>"
            f"<table><tr><th>bin</th><th>decisions</th><th>consensus</th><th>mean consensus"
            f"</th><th>hit rate</th><th>SE</th><th>trades opened</th><th>mean net P&L per "
            f"trade ($)</th></tr>{rows}</table>{image}"
            f"<p><b>The gates</b>: {chosen}, {choice} (default threshold "
            f"{u['default_threshold']:g}, gate 1 enforced). On the {u['split']} split "
            f"{verdict}: it made "
            f"{_fmt(side['trades_let_through'], '{:.1%}')} of the ungated team's trades; the "
            f"gates held back {_fmt(side['share_of_wanted_trades_held_back'], '{:.1%}')} of "
            f"the {side['gated_wanted_new_exposure']:,} wanted new exposures; gate 1 closed "
            f"at {side['gated_synergy_closed']:,} and gate 2 at "
            f"{side['gated_consensus_closed']:,} of {side['gated_decisions']:,} decisions.</p>"
            f"<table style='display:inline-table;vertical-align:top;margin-right:1em'><tr>"
            f"<th>{u['split']} split</th><th>ungated</th><th>gated</th></tr>{side_rows}"
            f"</table>" + (f"<table style='display:inline-table;vertical-align:top'><tr>"
                           f"<th>validation: gate 1</th><th>threshold</th><th>regime +</th>"
                           f"<th>drawdown +/%</th><th>trades</th><th>net P&L ($)"
                           f"</th><th>Sharpe</th></tr>{grid}</table>" if grid else ""))


def write_html(report: dict[str, Any], folder: Path) -> None:
    """The self-contained report page (images embedded)."""
    gated = report.get("gated")
    columns = ["agents", *(["agents, gated"] if gated else []), *report["baselines"]]
    head = "".join(f"<th>{html.escape(strategy_label(c))}</th>" for c in columns)
    body = []
    for key, label, pattern in _ROWS:
        cells = [_fmt(report["agents"].get(key), pattern)]
        if gated:
            cells.append(_fmt(gated["metrics"].get(key), pattern))
        cells += [_fmt(report["baselines"][b].get(key), pattern) for b in report["baselines"]]
        body.append(f"<tr><td>{label}</td>" + "".join(f"<td>{c}</td>" for c in cells)
                    + "</tr>")
    ci = report["sharpe_difference_vs_best"]
    period = report["period"]
    costs = report["costs_assumed"]
    random = report["baselines"]["random"]
    warn = ("<p class='warn'>In-sample: these figures are on the training split.</p>"
            if report["in_sample"] else "")
    oracle = _oracle_html(report)

    gates = ""
    if gated:
        g, n = gated["gates"], gated["gate_counts"]
        gates = (f"<p><b>Two-gate decision</b> (the live decision of <code>algospace "
                 f"decide</code>; gate 1 {'enforced' if g['synergy_gate'] else 'recorded only'}"
                 f", threshold {g['threshold']:g}, {g['mc_passes']} MC passes): "
                 f"gate 1 (synergy) closed at {n['synergy_closed']:,} and gate 2 (MC "
                 f"consensus) at {n['consensus_closed']:,} of {n['decisions']:,} decisions; "
                 f"the gates held back {n['held_back']:,} trades. Gated: Sharpe "
                 f"{gated['metrics']['sharpe']:.2f}, net P&L "
                 f"${gated['metrics']['net_pnl']:,.0f}, {gated['metrics']['trades']} "
                 "trades (column <i>agents, gated</i>). Decisions counted: "
                 f"{html.escape(counted(period))}.</p>")

    def img(name: str, alt: str) -> str:
        data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
        return f"<img alt='{alt}' src='data:image/png;base64,{data}'>"

    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>AlgoSpace evaluation — {report['env']}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:right}}td:first-child{{text-align:left}}img{{max-width:100%;margin:0.5em 0}}
.warn{{color:#b00;font-weight:bold}}code{{background:#f3f3f3}}</style></head><body>
<h1>Evaluation: {html.escape(report['env'])} ({html.escape(report['algorithm'])})</h1>
{warn}
<p><b>Data</b>: {html.escape(report['data'])}, <b>{report['split']}</b> split —
{period['first_bar']} to {period['last_bar']}, {period['bars']:,} bars,
{period['trading_days']} trading days, {period['tiles']} episode tiles
({period['ruined_tiles']} ended by ruin).<br>
<b>Costs</b>: {costs['symbol']} ${costs['point_value']:g}/point, commission
${costs['commission_per_contract_per_side']:g} and {costs['slippage_ticks_per_side']:g}
tick(s) slippage per contract per side; up to {report['max_position']} contracts
(leverage cap {report['sizing']['leverage_cap']:g}× of ${report['initial_equity']:,.0f} at
{report['sizing']['reference_price']:,.2f}, the training split's highest close); every
strategy is flattened for good when its equity falls to ${report['ruin_level']:,.0f}.<br>
<b>Normalisation</b>: {html.escape(report['normalisation'])}.<br>
<b>Policy</b>: {html.escape(report['policy'])}. <b>Annualisation</b>:
{html.escape(report['annualisation'])}.</p>
{oracle}
<p>Daily P&L of the agents minus the best baseline (<b>{report['best_baseline']}</b>):
${report['pnl_difference_vs_best']['mean_daily_usd']:,.0f} a day, 95 % interval
[${report['pnl_difference_vs_best']['low_2.5']:,.0f},
${report['pnl_difference_vs_best']['high_97.5']:,.0f}]. Sharpe difference:
{ci['point']:.2f}, 95 % interval [{ci['low_2.5']:.2f}, {ci['high_97.5']:.2f}]
({ci['method']}, {ci['resamples']} resamples). Random baseline: Sharpe
{random['sharpe_mean_over_seeds']:.2f} ± {random['sharpe_sd_over_seeds']:.2f} over
{random['seeds']} seeds (the table shows the first seed).</p>
{gates}
<table><tr><th></th>{head}</tr>{''.join(body)}</table>
{img('equity.png', 'equity and drawdown')}
{img('positions.png', 'price, trades and position')}
{img('actions.png', 'action distribution')}
{img('monthly.png', 'monthly returns')}
{_breakdown_html(report)}
{img('costs.png', 'net P&L against the cost multiple')}
{img('hours.png', 'net P&L per hour and weekday')}
{_uncertainty_html(report, img('calibration.png', 'reliability of the MC consensus')
                   if report.get('uncertainty') else '')}
<p>Checkpoint: <code>{html.escape(report['checkpoint'])}</code>. Figures in
<code>report.json</code>.</p></body></html>
"""
    (folder / "report.html").write_text(page, encoding="utf-8")
