"""Reports as HTML: one self-contained file per page, for people to read and publish.

``render_report(report)``, ``render_matrix(matrix)`` and ``render_diff(diff)`` each return a
whole page: inline CSS and SVG, no network assets (a Content-Security-Policy forbids
them), readable without JavaScript; a few lines of inline script only add filtering
and sorting. Every text taken from a report goes through ``html.escape``; a status is
always written as a word, never shown by colour alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from importlib.metadata import PackageNotFoundError, version

from .reportdata import (
    STATUSES,
    Diff,
    Matrix,
    Report,
    RequirementResult,
    TestResult,
    Verdict,
    failures,
    group_by_area,
)
from .requirements import LEVELS

STATUS_TEXT = {
    "pass": "pass",
    "fail": "fail",
    "not-applicable": "not applicable",
    "skipped": "skipped",
    "untested": "untested",
}
_MARK = {"pass": "✓", "fail": "✗", "not-applicable": "∅", "skipped": "↷", "untested": "?"}
_FILL = {
    "pass": "#2da44e",
    "fail": "#cf222e",
    "not-applicable": "#8c959f",
    "skipped": "#d4a72c",
    "untested": "#8250df",
}
_RANK = {"fail": 0, "untested": 1, "skipped": 2, "not-applicable": 3, "pass": 4}
_VERDICT_TEXT = {
    "conformant": "Conformant",
    "not conformant": "Not conformant",
    "incomplete": "Conformance not shown",
}

_CSS = """
:root{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328}
body{margin:0;background:#f6f8fa}main{max-width:1240px;margin:0 auto;padding:24px 32px;
background:#fff}h1{font-size:1.7em;margin:0 0 .3em}h2{margin-top:1.6em;
border-bottom:1px solid #d0d7de;padding-bottom:.2em}h3{margin:1.2em 0 .4em}
table{border-collapse:collapse;width:100%;margin:.5em 0}caption{text-align:left;
font-weight:600;padding:.3em 0}th,td{border:1px solid #d0d7de;padding:5px 8px;
text-align:left;vertical-align:top}thead th{background:#f6f8fa}
th[scope=row]{font-weight:400;white-space:nowrap}
table.env{width:auto}table.env th{background:#f6f8fa;font-weight:600}
code,pre{font:13px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;border:1px solid #d0d7de;
padding:6px 8px;margin:.3em 0;max-height:24em;overflow:auto}
.status{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;
white-space:nowrap;border:1px solid}
.s-pass{color:#116329;background:#dafbe1;border-color:#4ac26b}
.s-fail{color:#a40e26;background:#ffebe9;border-color:#ff8182}
.s-not-applicable{color:#424a53;background:#eaeef2;border-color:#afb8c1}
.s-skipped{color:#7d4e00;background:#fff8c5;border-color:#d4a72c}
.s-untested{color:#512a97;background:#fbefff;border-color:#c297ff}
.verdict{font-size:1.15em;padding:12px 16px;border-radius:6px;border:2px solid}
.v-conformant{background:#dafbe1;border-color:#2da44e}
.v-not-conformant{background:#ffebe9;border-color:#cf222e}
.v-incomplete{background:#fff8c5;border-color:#d4a72c}
.reason,.source,.muted{color:#59636e;font-size:.92em}.source{margin:.2em 0 0}
td p{margin:0}ul.tests{margin:0;padding-left:1.1em}td.num{text-align:right}
tr.area th{background:#eaeef2;font-size:1.05em}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);
white-space:nowrap}p.run{margin:.2em 0 .8em}
td .verdict{font-size:1em;margin:0;padding:4px 8px;border-width:1px}
#filters{display:flex;gap:1em;align-items:center;flex-wrap:wrap;margin:.6em 0}
#filters[hidden]{display:none}@media print{#filters{display:none}}
"""

_SCRIPT = """
(function(){var box=document.getElementById("filters");if(!box)return;box.hidden=false;
var q=document.getElementById("f-text"),s=document.getElementById("f-status"),
o=document.getElementById("f-sort");
function rows(){return [].slice.call(document.querySelectorAll("tr[data-status]"));}
function apply(){var t=q.value.toLowerCase(),st=s.value;rows().forEach(function(r){
r.hidden=!((!st||(" "+r.dataset.status+" ").indexOf(" "+st+" ")>=0)&&
(!t||r.textContent.toLowerCase().indexOf(t)>=0));});}
function sort(){var k=o.value;[].slice.call(document.querySelectorAll("tbody")).forEach(
function(b){var rs=[].slice.call(b.querySelectorAll("tr[data-status]"));rs.sort(
function(a,c){return a.dataset[k]<c.dataset[k]?-1:a.dataset[k]>c.dataset[k]?1:0;});
rs.forEach(function(r){b.appendChild(r);});});}
q.addEventListener("input",apply);s.addEventListener("change",apply);
o.addEventListener("change",sort);})();
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    csp = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
    try:
        generator = f"pytest-containers {version('pytest-containers')}"
    except PackageNotFoundError:  # running from a source tree that is not installed
        generator = "pytest-containers"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{_e(generator)}">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style></head>\n<body><main>\n{body}\n"
        f'<footer class="muted"><p>Made by {_e(generator)}.</p></footer>\n'
        f"</main><script>{_SCRIPT}</script></body></html>\n"
    )


def badge(status: str) -> str:
    """A status as a coloured label that says the status in words."""
    return (
        f'<span class="status s-{_e(status)}"><span aria-hidden="true">{_MARK[status]}</span> '
        f"{_e(STATUS_TEXT[status])}</span>"
    )


def verdict_sentence(label: str, verdict: Verdict, ids: Sequence[str] = ()) -> str:
    """The verdict in words; ``ids``: the MUST requirements that fail or were not shown."""
    must = verdict.counts["MUST"]
    total = sum(must.values())
    named = f": {', '.join(ids[:8])}{', …' if len(ids) > 8 else ''}" if ids else ""
    if verdict.summary == "conformant":
        na = must["not-applicable"]
        also = f" and {na} {'is' if na == 1 else 'are'} not applicable to it" if na else ""
        return (
            f"{label} meets every MUST requirement of the catalogue: {must['pass']} of "
            f"{total} pass{also}."
        )
    if verdict.summary == "not conformant":
        return f"{label} fails {must['fail']} of {total} MUST requirements{named}."
    missing = must["skipped"] + must["untested"]
    return (
        f"No MUST requirement fails, but {missing} of {total} were skipped or not tested"
        f"{named}, so this run does not show that {label} conforms."
    )


def must_ids(report: Report) -> list[str]:
    """The MUST requirements that make the verdict what it is (failing, else not shown)."""
    must = [r for r in report.requirements if r.level == "MUST"]
    failing = [r.id for r in must if r.status == "fail"]
    return failing or [r.id for r in must if r.status in ("skipped", "untested")]


def _verdict_box(label: str, report: Report, ident: str = "") -> str:
    verdict = report.verdict
    css = verdict.summary.replace(" ", "-")
    attr = f' id="{ident}"' if ident else ""
    sentence = verdict_sentence(label, verdict, must_ids(report))
    return (
        f'<p class="verdict v-{css}"{attr}><strong>{_VERDICT_TEXT[verdict.summary]}.'
        f"</strong> {_e(sentence)}</p>"
    )


def _counts_table(verdict: Verdict) -> str:
    head = "".join(f'<th scope="col">{badge(s)}</th>' for s in STATUSES)
    rows = []
    for level in LEVELS:
        counts = verdict.counts[level]
        cells = "".join(f'<td class="num">{counts[s]}</td>' for s in STATUSES)
        total = sum(counts.values())
        rows.append(f'<tr><th scope="row">{level}</th>{cells}<td class="num">{total}</td></tr>')
    return (
        "<table><caption>Requirements by level and status</caption>"
        f'<thead><tr><th scope="col">Level</th>{head}<th scope="col">Total</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def chart(groups: dict[str, list[str]], title: str) -> str:
    """A stacked bar per group (its statuses counted), as inline SVG with a text summary."""
    width, bar_x, bar_w, row_h = 1000, 180, 360, 26
    height = row_h * len(groups) + 34
    parts, summaries = [], []
    for i, (name, statuses) in enumerate(groups.items()):
        y = i * row_h
        counts = {s: statuses.count(s) for s in STATUSES if s in statuses}
        text = ", ".join(f"{n} {STATUS_TEXT[s]}" for s, n in counts.items()) or "no requirements"
        summaries.append(f"{name}: {text}")
        label = name if len(name) <= 26 else name[:25] + "…"
        parts.append(f'<text x="0" y="{y + 17}">{_e(label)}</text>')
        x = float(bar_x)
        for status, n in counts.items():
            w = bar_w * n / len(statuses)
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="18" '
                f'fill="{_FILL[status]}"><title>{n} {STATUS_TEXT[status]}</title></rect>'
            )
            x += w
        parts.append(f'<text x="{bar_x + bar_w + 12}" y="{y + 17}">{_e(text)}</text>')
    x, y = float(bar_x), row_h * len(groups) + 14
    for status in STATUSES:
        parts.append(f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{_FILL[status]}"/>')
        parts.append(f'<text x="{x + 16}" y="{y}">{STATUS_TEXT[status]}</text>')
        x += 16 + 8 * len(STATUS_TEXT[status]) + 18
    label = f"{title}. " + "; ".join(summaries)
    return (
        f'<svg role="img" aria-label="{_e(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-size="13" font-family="system-ui,sans-serif" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>{"".join(parts)}</svg>'
    )


def _filters() -> str:
    options = "".join(f'<option value="{s}">{STATUS_TEXT[s]}</option>' for s in STATUSES)
    return (
        '<div id="filters" hidden><label>Filter <input id="f-text" type="search" '
        'placeholder="ID, text or test"></label> <label>Status <select id="f-status">'
        f'<option value="">any</option>{options}</select></label> <label>Sort by '
        '<select id="f-sort"><option value="order">catalogue order</option>'
        '<option value="rank">status, worst first</option><option value="id">ID</option>'
        "</select></label></div>"
    )


def _row_attrs(index: int, rid: str, statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    rank = min((_RANK[s] for s in statuses), default=9)
    return (
        f'id="req-{_e(rid)}" data-status="{_e(" ".join(dict.fromkeys(statuses)))}" '
        f'data-order="{index:06d}" data-rank="{rank}-{index:06d}" data-id="{_e(rid)}"'
    )


def _requirement_cell(req: RequirementResult) -> str:
    return f'<td><p>{_e(req.text)}</p><p class="source">Source: {_e(req.source)}</p></td>'


def _failure(test: TestResult) -> str:
    parts = [f'<pre class="message">{_e(test.message or "failed")}</pre>']
    if test.example:
        parts.append(f'<p>Falsifying example:</p><pre class="example">{_e(test.example)}</pre>')
    if test.reproduce:
        parts.append(
            "<p>Reproduce (from the project's root directory):</p>"
            f'<pre class="reproduce"><code>{_e(test.reproduce)}</code></pre>'
        )
    return f"<details open><summary>{_e(test.outcome)}</summary>{''.join(parts)}</details>"


def _tests_cell(req: RequirementResult) -> str:
    if not req.tests:
        return '<td class="muted">none</td>'
    items = []
    for test in req.tests:
        outcome = test.outcome.replace("-", " ")
        detail = _failure(test) if test.outcome in ("failed", "error") else ""
        if test.outcome in ("skipped", "not-applicable") and test.message:
            outcome += f": {test.message}"
        items.append(
            f'<li><code>{_e(test.nodeid)}</code> <span class="muted">{_e(outcome)}, '
            f"{test.duration:.2f} s</span>{detail}</li>"
        )
    return f'<td><ul class="tests">{"".join(items)}</ul></td>'


def _status_cell(req: RequirementResult | None) -> str:
    if req is None:
        return '<td class="muted">not in this catalogue</td>'
    reason = req.reason
    if req.status == "fail":
        reason = "; ".join(
            dict.fromkeys(t.message.splitlines()[0] for t in failures(req) if t.message)
        )
        reason = reason if len(reason) <= 200 else reason[:199] + "…"
    extra = f'<br><span class="reason">{_e(reason)}</span>' if reason else ""
    return f"<td>{badge(req.status)}{extra}</td>"


def _environment(report: Report) -> str:
    run = report.run
    rows = {"system under test": report.label or "unknown", **report.environment}
    rows["started"] = str(run.get("started", ""))
    rows["duration"] = f"{float(run.get('duration', 0)):.1f} s"
    if run.get("command"):
        rows["command"] = str(run["command"])
    body = "".join(
        f'<tr><th scope="row">{_e(k)}</th><td>{_e(v)}</td></tr>' for k, v in rows.items()
    )
    caption = '<caption class="sr-only">Environment</caption>'
    return f'<table class="env">{caption}<tbody>{body}</tbody></table>'


def _when(report: Report) -> str:
    return str(report.run.get("started", "")).replace("T", " ").replace("+00:00", " UTC")


def _run_line(report: Report) -> str:
    env, run = report.environment, report.run
    where = f" on {env['hostname']}" if env.get("hostname") else ""
    # pytest's exit status 2: interrupted (Ctrl-C): the results are partial
    cut = (
        " <strong>Interrupted: the results are partial.</strong>"
        if run.get("exit_status") == 2
        else ""
    )
    return (
        f'<p class="run muted">Run{_e(where)}, {_e(_when(report))}, '
        f"{float(run.get('duration', 0)):.1f} s; {len(report.requirements)} requirements.{cut}</p>"
    )


def render_report(report: Report) -> str:
    """The conformance report of one run."""
    label = report.label or "the system under test"
    title = f"Conformance report: {report.label or 'unknown system'}"
    areas = group_by_area(report.requirements)
    sections = []
    index = 0
    for area, reqs in areas.items():
        rows = []
        for req in reqs:
            index += 1
            rows.append(
                f"<tr {_row_attrs(index, req.id, [req.status])}>"
                f'<th scope="row"><code>{_e(req.id)}</code></th><td>{_e(req.level)}</td>'
                f"{_requirement_cell(req)}{_status_cell(req)}{_tests_cell(req)}</tr>"
            )
        sections.append(
            f'<section><h3>{_e(area)}</h3><table class="reqs">'
            f'<caption class="sr-only">Requirements of {_e(area)}</caption><thead><tr>'
            '<th scope="col">ID</th><th scope="col">Level</th><th scope="col">Requirement</th>'
            '<th scope="col">Status</th><th scope="col">Tests</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></section>"
        )
    groups = {area: [r.status for r in reqs] for area, reqs in areas.items()}
    body = (
        f"<header><h1>{_e(title)}</h1>{_run_line(report)}"
        f"{_verdict_box(label, report, 'verdict')}</header>"
        f"<h2>Summary</h2>{_counts_table(report.verdict)}"
        f"<h2>By area</h2>{chart(groups, 'Requirements by area and status')}"
        f"<h2>Environment</h2>{_environment(report)}"
        f"<h2>Requirements</h2>{_filters()}{''.join(sections)}"
    )
    return _page(title, body)


def render_matrix(matrix: Matrix) -> str:
    """Requirements down, systems across."""
    systems = "".join(
        f'<tr><th scope="row">{_e(label)}</th><td>{_verdict_box(label, r)}</td>'
        f"<td>{_e(_when(r))}</td><td>{_e(r.environment.get('kernel', ''))}</td>"
        "</tr>"
        for label, r in zip(matrix.labels, matrix.reports, strict=True)
    )
    heads = "".join(f'<th scope="col">{_e(label)}</th>' for label in matrix.labels)
    body_rows = []
    index = 0
    for area, rows in group_by_area(matrix.rows).items():
        body_rows.append(
            f'<tr class="area"><th colspan="{3 + len(matrix.labels)}" scope="colgroup">'
            f"{_e(area)}</th></tr>"
        )
        for row in rows:
            index += 1
            statuses = [c.status for c in row.cells if c is not None]
            cells = "".join(_status_cell(c) for c in row.cells)
            body_rows.append(
                f"<tr {_row_attrs(index, row.id, statuses)}>"
                f'<th scope="row"><code>{_e(row.id)}</code></th><td>{_e(row.level)}</td>'
                f'<td><p>{_e(row.text)}</p><p class="source">Source: {_e(row.source)}</p></td>'
                f"{cells}</tr>"
            )
    groups = {
        label: [req.status for req in report.requirements]
        for label, report in zip(matrix.labels, matrix.reports, strict=True)
    }
    title = "Conformance matrix: " + ", ".join(matrix.labels)
    body = (
        f"<header><h1>Conformance matrix</h1><p>{len(matrix.rows)} requirements, "
        f"{len(matrix.labels)} systems.</p></header>"
        '<h2>Systems</h2><table><thead><tr><th scope="col">System</th>'
        '<th scope="col">Verdict</th><th scope="col">Started</th><th scope="col">Kernel</th>'
        f"</tr></thead><tbody>{systems}</tbody></table>"
        f"{chart(groups, 'Requirements by system and status')}"
        f'<h2>Requirements</h2>{_filters()}<table class="matrix">'
        "<caption>Status of each requirement on each system</caption><thead><tr>"
        '<th scope="col">ID</th><th scope="col">Level</th><th scope="col">Requirement</th>'
        f"{heads}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
    )
    return _page(title, body)


def render_diff(diff: Diff) -> str:
    """What changed between two runs, new failures first."""
    old, new = diff.old, diff.new
    title = f"Conformance changes: {new.label or 'unknown system'}"
    note = (
        ""
        if diff.same_system
        else f"<p><strong>Note:</strong> these are runs of different systems "
        f"({_e(old.label)} and {_e(new.label)}).</p>"
    )
    runs = "".join(
        f'<tr><th scope="row">{name}</th><td>{_e(r.label)}</td><td>{_e(_when(r))}'
        f"</td><td>{_verdict_box(r.label, r)}</td></tr>"
        for name, r in (("old", old), ("new", new))
    )
    kinds: dict[str, int] = {}
    for change in diff.changes:
        kinds[change.kind] = kinds.get(change.kind, 0) + 1
    counted = ", ".join(f"{n} {kind}" + ("s" if n > 1 else "") for kind, n in kinds.items())
    summary = (
        f"{len(diff.changes)} requirements changed status ({counted}); {diff.unchanged} did not."
        if diff.changes
        else f"No requirement changed status ({diff.unchanged} compared)."
    )
    rows = []
    for i, change in enumerate(diff.changes, 1):
        req = change.requirement
        details = "".join(_failure(t) for t in failures(change.new)) or (
            '<span class="muted">—</span>'
        )
        rows.append(
            f"<tr {_row_attrs(i, req.id, [req.status])}><td>{_e(change.kind)}</td>"
            f'<th scope="row"><code>{_e(req.id)}</code></th><td>{_e(req.level)}</td>'
            f"{_requirement_cell(req)}{_status_cell(change.old)}{_status_cell(change.new)}"
            f"<td>{details}</td></tr>"
        )
    table = (
        f"<h2>Changes</h2>{_filters()}<table><caption>Requirements whose status changed"
        '</caption><thead><tr><th scope="col">Change</th><th scope="col">ID</th>'
        '<th scope="col">Level</th><th scope="col">Requirement</th><th scope="col">Before</th>'
        '<th scope="col">After</th><th scope="col">Failures</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        if rows
        else ""
    )
    body = (
        f'<header><h1>{_e(title)}</h1>{note}<p id="verdict">{_e(summary)}</p></header>'
        '<h2>Runs</h2><table><thead><tr><th scope="col">Run</th><th scope="col">System</th>'
        '<th scope="col">Started</th><th scope="col">Verdict</th></tr></thead>'
        f"<tbody>{runs}</tbody></table>{table}"
    )
    return _page(title, body)
