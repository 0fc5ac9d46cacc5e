"""The benchmark dict (``build_benchmark_result``) as a terminal table or one HTML page,
and the rows and figures the staff pages show.

Pure functions of the dict, so the ``benchmark`` command, the staff page and a saved
JSON file all render the same report. Keys beyond the promised schema are optional
here: a dict that has only the promised keys still renders. Figures are drawn on
``matplotlib.figure.Figure`` objects (Agg, no pyplot state), which is safe inside a
web server, and embedded as base64 PNG so the page is a single file.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

HUMAN_COLOR = "#d9822b"
MODEL_COLOR = "#4a78b5"
OTHER_COLOR = "#9aa5b1"


# --------------------------------------------------------------------------- formatting helpers


def _percent(x: float | None) -> float | None:
    """A share (0.563) as a percentage (56.3); None (undefined) stays None."""
    return None if x is None else 100 * x


def percent_text(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f} %"


def decimal_text(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _interval_text(ci: Sequence[float | None] | None) -> str:
    """A confidence interval of shares, in percent: ``[48.2, 61.0]``."""
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _p_value_text(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def _signed_points_text(x: float | None) -> str:
    """A difference of shares in percentage points, with its sign: ``+4.1``."""
    return "n/a" if x is None else f"{100 * x:+.1f}"


def _size_line(testset: dict, labels: Sequence[str]) -> str:
    """Images, annotators, votes, ties; the test set's images beside those with votes when
    the result knows both, and the files skipped at import as repeats."""
    in_testset = testset.get("n_images_in_testset")
    images = (
        f"{in_testset} images in the test set, {testset['n_images']} of them with votes; "
        if in_testset is not None
        else f"{testset['n_images']} images, "
    )
    repeated = testset.get("n_repeated_files")
    repeats = (
        f" {repeated} file(s) skipped at import as repeats of another image (votes naming "
        "them were left out)."
        if repeated
        else ""
    )
    return (
        f"{images}{testset['n_annotators']} annotators, "
        f"{testset['n_votes']} votes; {testset['n_ties']} images tied (no majority).{repeats} "
        f"Labels: {', '.join(labels)}."
    )


def _points(x: float) -> str:
    return f"{100 * abs(x):.1f} points {'above' if x >= 0 else 'below'}"


def _noninferiority_clause(test: dict | None) -> str:
    if not test:
        return ""
    margin = 100 * test["margin"]
    if test["p_value"] is None:
        return f"; non-inferiority within {margin:g} points cannot be tested here"
    verdict = "non-inferior" if test["non_inferior"] else "not shown non-inferior"
    return (f"; {verdict} within a margin of {margin:g} points (one-sided p = {_p_value_text(test['p_value'])}, "
            f"lower 95 % bound {_signed_points_text(test['lower_bound'])} points)")


def headline(result: dict) -> list[str]:
    """The answer in one sentence per model that a reader can quote: against the panel
    when there is one, else against the held-out annotator."""
    panel = result.get("panel")
    lines = []
    if panel and panel.get("n_annotators_included"):
        sizes = [a["n_images"] for a in panel["annotators"] if a["included"]]
        images = f"{min(sizes)}-{max(sizes)}" if min(sizes) != max(sizes) else str(sizes[0])
        for model in panel["models"]:
            if model.get("difference") is None:
                continue
            ci = model["ci95"]
            interval = ("" if ci[0] is None else
                        f"95 % CI {_signed_points_text(ci[0])} to {_signed_points_text(ci[1])}, ")
            lines.append(
                f"{model['name']} is {_points(model['difference'])} the mean of "
                f"{panel['n_annotators_included']} annotators ({interval}p = {_p_value_text(model['p_value'])}, "
                f"{images} paired images per annotator){_noninferiority_clause(model.get('noninferiority'))}.")
        return lines
    holdout = result["holdout"]
    for model in result.get("models", []):
        if model.get("diff_vs_human") is None:
            continue
        ci = model.get("diff_vs_human_ci95") or [None, None]
        interval = ("" if ci[0] is None else
                    f"95 % CI {_signed_points_text(ci[0])} to {_signed_points_text(ci[1])}, ")
        lines.append(
            f"{model['name']} is {_points(model['diff_vs_human'])} the held-out annotator {holdout['annotator']} "
            f"({percent_text(model['accuracy'])} against {percent_text(holdout['accuracy'])}; {interval}"
            f"McNemar p = {_p_value_text(model.get('mcnemar_p'))}, {model['n_images']} paired images)"
            f"{_noninferiority_clause(model.get('noninferiority'))}.")
    return lines


def study_lines(result: dict) -> list[str]:
    """Sentences on how the study was made, beside its figures: its design (fully crossed
    or partial overlap), how the votes were scored, extra answers, the control images and
    the annotators left out. Every renderer shows these same lines."""
    testset, lines = result["testset"], []
    design = result.get("design")
    if design and design["n_annotators"]:
        if design["fully_crossed"]:
            lines.append(f"Design: fully crossed, every one of {design['n_annotators']} annotators labelled "
                         f"every one of {design['n_images']} images.")
        else:
            lines.append(
                f"Design: partial overlap, {design['n_annotators']} annotators, a mean of "
                f"{design['mean_images_per_annotator']:.1f} images per annotator and "
                f"{design['mean_annotators_per_image']:.2f} annotators per image; "
                f"{design['n_pairs_sharing_images']} of {design['n_annotator_pairs']} pairs of annotators "
                "share images. Every figure is computed per image and per annotator's own images; "
                "Fleiss' kappa weighs each image alike whatever its number of votes (Gwet's "
                "generalisation) and leaves out images with one vote.")
    if testset.get("votes_per_image"):
        most = testset.get("max_votes_per_image")
        saved = testset.get("votes_saved")
        lines.append(f"Votes per image from a pool: {testset['votes_per_image']}"
                     + (f" to {most} (adaptive; its early stops saved {saved} votes)." if most else "."))
    if testset.get("binning"):
        lines.append(testset["binning"])
    extras = testset.get("extra_answers") or {}
    if extras:
        lines.append("Extra answers, counted here and in no majority or accuracy: "
                     + ", ".join(f"{name} {n}" for name, n in extras.items()) + ".")
    if testset.get("n_control_images"):
        lines.append(f"{testset['n_control_images']} control images ({testset.get('n_control_votes', 0)} votes) "
                     "are left out of every figure.")
    for flagged in testset.get("flagged_annotators") or []:
        lines.append(f"Flagged by the annotator quality checks, and counted here: {flagged['annotator']} "
                     f"({'; '.join(flagged['flags'])}); staff may exclude them on the quality page.")
    for excluded in testset.get("excluded_annotators") or []:
        by = f" by {excluded['by']}" if excluded.get("by") else ""
        lines.append(f"Excluded: {excluded['annotator']} ({excluded['n_votes']} votes left out){by} on "
                     f"{excluded['at'][:10]}, because: {excluded['reason']}")
    return lines


def _reference_text(result: dict) -> str:
    """What the held-out annotators were scored against."""
    if result.get("reference") == "dawid-skene":
        return "the Dawid-Skene estimate from the other annotators' votes"
    return "the majority of the other annotators"


def _bootstrap_note(bootstrap: dict) -> str:
    return (
        f"{bootstrap['method']} bootstrap over images, {bootstrap['n_resamples']} resamples, "
        f"seed {bootstrap['seed']}"
    )


def _human_name(result: dict) -> str:
    return f"human ({result['holdout']['annotator']})"


def _rows(result: dict) -> list[dict]:
    """The held-out human first, then each model, in the same shape."""
    holdout = result["holdout"]
    human = {"name": _human_name(result), **holdout, "is_human": True}
    return [human] + [{**m, "is_human": False} for m in result.get("models", [])]


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]
) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        return "  ".join(
            str(c).rjust(w) if r else str(c).ljust(w) for c, w, r in zip(cells, widths, right)
        ).rstrip()

    return [
        "  " + line(header),
        "  " + line(["-" * w for w in widths]),
        *("  " + line(r) for r in rows),
    ]


def _confusion_lines(labels: list[str], confusion, counts) -> list[str]:
    header = ["reference \\ predicted", *labels, "n"]
    rows = []
    for i, label in enumerate(labels):
        row_counts = counts[i] if counts is not None else None
        n = str(sum(row_counts)) if row_counts is not None else ""
        rows.append([label, *("n/a" if v is None else f"{100 * v:.1f}" for v in confusion[i]), n])
    return _table(header, rows, [False] + [True] * (len(labels) + 1))


# --------------------------------------------------------------------------- terminal


def _score_cells(row: dict) -> list[str]:
    """One line of the scores table (human or model), shared by both reports."""
    return [
        row["name"],
        str(row["n_images"]),
        percent_text(row["accuracy"]),
        _interval_text(row.get("ci95")),
        "" if row["is_human"] else _signed_points_text(row.get("diff_vs_human")),
        "" if row["is_human"] else _p_value_text(row.get("mcnemar_p")),
    ]


def _agreement_rows(agreement: dict) -> list[list[str]]:
    """The agreement table shared by the terminal and the HTML report."""
    return [
        ["agreement accuracy (own vote counted, thesis 7.2)", percent_text(agreement["accuracy"])],
        ["leave-one-out agreement", percent_text(agreement["loo_accuracy"])],
        ["Fleiss' kappa", decimal_text(agreement["fleiss_kappa"])],
        ["Krippendorff's alpha (nominal)", decimal_text(agreement["krippendorff_alpha"])],
    ]


def _points_interval_text(ci: Sequence[float | None] | None) -> str:
    """An interval of differences of shares, in percentage points: ``[-4.1, +2.0]``."""
    if not ci or ci[0] is None or ci[1] is None:
        return "n/a"
    return f"[{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


def _panel_annotator_table(panel: dict) -> tuple[list[str], list[list[str]], list[bool]]:
    """Per annotator: images, their accuracy, and each model's accuracy on the same images,
    its difference from the annotator (points) and the exact McNemar p."""
    names = [m["name"] for m in panel["models"]]
    header = ["annotator", "images", "accuracy"]
    for name in names:
        header += [name, "vs human", "McNemar p"]
    rows = []
    for a in panel["annotators"]:
        row = [
            a["annotator"] + ("" if a["included"] else " *"),
            str(a["n_images"]),
            percent_text(a["accuracy"]),
        ]
        for name in names:
            row += [
                percent_text(a["models"].get(name)),
                _signed_points_text(a["differences"].get(name)),
                _p_value_text(a["mcnemar_p"].get(name)),
            ]
        rows.append(row)
    return header, rows, [False] + [True] * (len(header) - 1)


def _panel_summary_table(panel: dict) -> tuple[list[str], list[list[str]], list[bool]]:
    """The panel: mean human accuracy, then each model's mean, difference, CI and p."""
    n = panel["n_annotators_included"]
    header = ["who", "mean accuracy", "vs human (points)", "95 % CI (points)", "p"]
    rows = [[f"humans (mean of {n})", percent_text(panel["human_mean_accuracy"]), "", "", ""]]
    for m in panel["models"]:
        rows.append(
            [
                m["name"],
                percent_text(m["mean_accuracy"]),
                _signed_points_text(m["difference"]),
                _points_interval_text(m["ci95"]),
                _p_value_text(m["p_value"]),
            ]
        )
    return header, rows, [False, True, True, True, True]


def _panel_notes(result: dict) -> list[str]:
    """What the panel is, what was left out, and how its interval and p-value are made."""
    panel = result["panel"]
    notes = [
        f"Panel: {panel['n_annotators']} annotators, each held out in turn; reference: "
        f"{_reference_text(result)}. Each "
        "model is scored on each annotator's paired images against the same reference; "
        "means are unweighted over annotators.",
    ]
    left_out = panel["n_annotators"] - panel["n_annotators_included"]
    if left_out:
        notes.append(
            f"* {left_out} annotator(s) with fewer than {panel['min_images']} paired images: "
            "listed, left out of the means."
        )
    if panel["n_annotators_included"] < 2:
        notes.append(
            "The interval and p-value need at least 2 annotators with enough paired images."
        )
    notes.append(
        f"95 % CI and p (two-sided) of model - human: {panel['method']}, over "
        f"{panel['n_images']} images; both the images and the annotators are treated as "
        "samples."
    )
    return notes


# --------------------------------------------------------------------------- the report's sections


def _paragraph(text: str, css: str = "") -> dict:
    return {"kind": "paragraph", "text": text, "css": css}


def _table_block(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool],
                 row_classes: Sequence[str] | None = None, css: str = "") -> dict:
    return {"kind": "table", "header": list(header), "rows": [list(r) for r in rows], "numeric": list(numeric),
            "row_classes": list(row_classes or [""] * len(rows)), "css": css}


def _figure_block(draw, alt: str, text_lines: Sequence[str] = ()) -> dict:
    """A figure drawn only where it is shown (``draw() -> Figure | None``); the terminal
    prints ``text_lines`` in its place."""
    return {"kind": "figure", "draw": draw, "alt": alt, "text_lines": list(text_lines)}


def _section(heading: str | None, *blocks: dict | None) -> dict:
    return {"heading": heading, "blocks": [b for b in blocks if b]}


def report_sections(result: dict) -> list[dict]:
    """The report as sections of headings, paragraphs, tables and figures: the one
    description of it that the terminal (``format_report_text``), the HTML download
    (``render_report_html``) and the staff page render alike."""
    testset, agreement, holdout = result["testset"], result["agreement"], result["holdout"]
    rows = _rows(result)
    how = "auto: median leave-one-out agreement" if holdout.get("selection") == "auto" else "chosen"
    left_out = []
    if holdout.get("n_excluded_ties") is not None:
        left_out.append(f"{holdout['n_excluded_ties']} left out where the others tie")
    if holdout.get("n_excluded_no_reference"):
        left_out.append(f"{holdout['n_excluded_no_reference']} labelled by nobody else")
    bootstrap = result.get("bootstrap")
    sections = [
        _section(None, *(_paragraph(line, "headline") for line in headline(result)),
                 _paragraph(_size_line(testset, result["labels"])),
                 *(_paragraph(line, "study") for line in study_lines(result))),
        _section("Agreement over all annotators",
                 _table_block(["measure", "value"], _agreement_rows(agreement), [False, True], css="agreement")),
        _section(
            f"Held-out annotator {holdout['annotator']} ({how}); reference = {_reference_text(result)}",
            _paragraph(f"{holdout['n_images']} paired images" + (f" ({'; '.join(left_out)})" if left_out else "")
                       + "; the human and every model are scored on exactly these."),
            _table_block(["who", "images", "accuracy", "95 % CI", "vs human (points)", "McNemar p"],
                         [_score_cells(r) for r in rows], [False, True, True, True, True, True],
                         ["human" if r["is_human"] else "" for r in rows], css="scores"),
            bootstrap and _paragraph(f"95 % CI: {_bootstrap_note(bootstrap)}. McNemar: exact, two-sided, human vs "
                                     "each model on the paired images.", "note"),
            _figure_block(lambda: accuracy_figure(result), "accuracy with 95 % confidence intervals"),
        ),
    ]
    panel = result.get("panel")
    if panel:
        sections.append(_section(
            f"Every annotator in turn: the panel of {panel['n_annotators']}",
            _table_block(*_panel_summary_table(panel), css="panel-summary"),
            _figure_block(lambda: panel_figure(result), "each annotator's accuracy and each model's"),
            _figure_block(lambda: forest_figure(result),
                          "forest plot: each model minus each annotator, and the panel's mean"),
            _table_block(*_panel_annotator_table(panel), css="panel-annotators"),
            *(_paragraph(note, "note") for note in _panel_notes(result)),
        ))
    confusion_text = []
    for row in rows:
        if row.get("confusion") is not None:
            confusion_text += ["", f"Confusion of {row['name']} (row %; rows: reference, columns: prediction)",
                               *_confusion_lines(result["labels"], row["confusion"], row.get("confusion_counts"))]
    sections.append(_section(
        "Confusion matrices",
        _paragraph("Row-normalised percentages; rows: reference label, columns: prediction.", "note"),
        _figure_block(lambda: confusion_figure(result), "confusion matrices", confusion_text),
    ))
    per_annotator = agreement.get("per_annotator")
    if per_annotator:
        sections.append(_section(
            "Leave-one-out agreement per annotator",
            _figure_block(lambda: agreement_figure(result), "leave-one-out agreement per annotator"),
            _table_block(["annotator", "agreement", "compared", "votes"],
                         [[a["annotator"] + (" (held out)" if a["annotator"] == holdout["annotator"] else ""),
                           percent_text(a["loo_accuracy"]), str(a["n_compared"]), str(a["n_votes"])]
                          for a in per_annotator], [False, True, True, True],
                         ["human" if a["annotator"] == holdout["annotator"] else "" for a in per_annotator],
                         css="annotators"),
        ))
    # the checkpoint of each model, where the result names it (``services.run_benchmark`` does)
    checkpoints = [m for m in result.get("models", []) if "checkpoint" in m]
    if checkpoints:
        sections.append(_section("Checkpoints", *(
            _paragraph(f"{m['name']}: {m['checkpoint']} ({m['architecture']}, trained on {m['training_label_set']})")
            for m in checkpoints)))
    return sections


def report_title(result: dict) -> str:
    return f"Human vs model: {result['testset'].get('name') or 'test set'}"


def format_report_text(result: dict) -> str:
    """The report's sections as plain text: tables aligned, figures as their text (the
    confusion matrices) or left out."""
    out = [report_title(result)]
    for section in report_sections(result):
        if section["heading"]:
            out += ["", section["heading"]]
        for block in section["blocks"]:
            if block["kind"] == "paragraph":
                out.append(block["text"])
            elif block["kind"] == "table":
                out += _table(block["header"], block["rows"], block["numeric"])
            else:
                out += block["text_lines"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- figures


def figure_to_data_uri(figure: Figure) -> str:
    """PNG of ``figure`` as a ``data:`` URI, so the page needs no image files."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def accuracy_figure(result: dict) -> Figure:
    """Accuracy of the human and each model with 95 % CI error bars."""
    rows = _rows(result)
    names = [r["name"] for r in rows]
    acc = np.array([np.nan if r["accuracy"] is None else 100 * r["accuracy"] for r in rows])
    lower, upper = [], []
    for r, a in zip(rows, acc):
        ci = r.get("ci95")
        ok = ci and ci[0] is not None and ci[1] is not None
        lower.append(a - 100 * ci[0] if ok else 0.0)
        upper.append(100 * ci[1] - a if ok else 0.0)
    figure = Figure(figsize=(max(4.0, 1.1 * len(rows) + 2), 3.6))
    ax = figure.subplots()
    colors = [HUMAN_COLOR if r["is_human"] else MODEL_COLOR for r in rows]
    x = np.arange(len(rows))
    ax.bar(x, acc, color=colors, yerr=[lower, upper], capsize=4)
    for xi, a in zip(x, acc):
        if not np.isnan(a):
            ax.text(xi, 1, f"{a:.1f}", ha="center", va="bottom", color="white", fontsize=9)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"Accuracy on {result['holdout']['n_images']} paired images (95 % CI)")
    ax.grid(axis="y", alpha=0.3)
    return figure


def confusion_figure(result: dict) -> Figure:
    """Row-normalised confusion matrices (rows: reference) of the human and each model."""
    rows = [r for r in _rows(result) if r.get("confusion") is not None]
    labels = result["labels"]
    n_cols = min(4, max(1, len(rows)))
    n_rows = -(-max(1, len(rows)) // n_cols)
    size = 0.75 * len(labels) + 1.2
    figure = Figure(figsize=(size * n_cols + 0.8, (size + 0.5) * n_rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(n_rows, n_cols)).ravel()
    for k, ax in enumerate(axes):
        if k >= len(rows):
            ax.set_axis_off()
            continue
        row = rows[k]
        matrix = np.array([[np.nan if v is None else 100 * v for v in r] for r in row["confusion"]])
        ax.imshow(np.nan_to_num(matrix), vmin=0, vmax=100, cmap="Blues")
        for i in range(len(labels)):
            for j in range(len(labels)):
                v = matrix[i, j]
                ax.text(
                    j,
                    i,
                    "n/a" if np.isnan(v) else f"{v:.0f}",
                    ha="center",
                    va="center",
                    color="white" if v > 60 else "black",
                    fontsize=9,
                )
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
        first_in_row = k % n_cols == 0
        ax.set_yticks(range(len(labels)), labels if first_in_row else [])
        if first_in_row:
            ax.set_ylabel("reference")
        ax.set_xlabel("prediction")
        ax.set_title(row["name"], fontsize=10)
    return figure


def agreement_figure(result: dict) -> Figure | None:
    """Leave-one-out agreement of each annotator; the held-out one highlighted."""
    per_annotator = result["agreement"].get("per_annotator")
    if not per_annotator:
        return None
    names = [a["annotator"] for a in per_annotator]
    values = [
        np.nan if a["loo_accuracy"] is None else 100 * a["loo_accuracy"] for a in per_annotator
    ]
    held = result["holdout"]["annotator"]
    figure = Figure(figsize=(max(4.0, 0.45 * len(names) + 2), 3.2))
    ax = figure.subplots()
    ax.bar(
        range(len(names)), values, color=[HUMAN_COLOR if n == held else OTHER_COLOR for n in names]
    )
    ax.set_xticks(
        range(len(names)),
        names,
        rotation=45 if len(names) > 8 else 0,
        ha="right" if len(names) > 8 else "center",
    )
    finite = [v for v in values if not np.isnan(v)]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 10), 100)
    ax.set_ylabel("leave-one-out agreement (%)")
    ax.set_title(f"Agreement with the others' majority (held out: {held})")
    ax.grid(axis="y", alpha=0.3)
    return figure


PANEL_MODEL_COLORS = [MODEL_COLOR, "#2f9e74", "#8e5bb5", "#c2464f", "#3d9fc2", "#7a7f2a"]


def panel_figure(result: dict) -> Figure | None:
    """The panel at a glance: one dot per annotator (their accuracy), a line per model (its
    mean accuracy over the same references) and a dashed line for the annotators' mean.

    Hollow dots are annotators left out of the means (too few paired images); each
    model's small marks are its accuracies against each annotator's reference.
    """
    panel = result.get("panel")
    if not panel or not panel["annotators"]:
        return None
    annotators = sorted(
        panel["annotators"],
        key=lambda a: (a["accuracy"] is None, a["accuracy"] or 0.0, a["annotator"]),
    )
    y = np.arange(len(annotators))
    figure = Figure(figsize=(7.0, 0.32 * len(annotators) + 1.8))
    ax = figure.subplots()
    for k, model in enumerate(panel["models"]):
        color = PANEL_MODEL_COLORS[k % len(PANEL_MODEL_COLORS)]
        marks = [_percent(a["models"].get(model["name"])) for a in annotators]
        ax.scatter(
            [np.nan if v is None else v for v in marks], y, marker="|", s=60, color=color,
            alpha=0.6,
        )
        if model["mean_accuracy"] is not None:
            ax.axvline(
                100 * model["mean_accuracy"], color=color, linewidth=2,
                label=f"{model['name']} {100 * model['mean_accuracy']:.1f} %",
            )
    if panel["human_mean_accuracy"] is not None:
        ax.axvline(
            100 * panel["human_mean_accuracy"], color=HUMAN_COLOR, linestyle="--",
            label=f"mean of annotators {100 * panel['human_mean_accuracy']:.1f} %",
        )
    accuracy = [np.nan if a["accuracy"] is None else 100 * a["accuracy"] for a in annotators]
    included = np.array([a["included"] for a in annotators], dtype=bool)
    ax.scatter(np.array(accuracy)[included], y[included], s=40, color=HUMAN_COLOR, zorder=3,
               label="annotator (held out)")
    if (~included).any():
        ax.scatter(np.array(accuracy)[~included], y[~included], s=40, facecolors="none",
                   edgecolors=HUMAN_COLOR, zorder=3,
                   label=f"fewer than {panel['min_images']} images")
    ax.set_yticks(y, [a["annotator"] for a in annotators])
    ax.set_xlabel(f"accuracy against {_reference_text(result)} (%)")
    ax.set_title("Each annotator held out in turn, and the models on the same images")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.08), ncol=2, fontsize=8,
              frameon=False)
    return figure


def forest_figure(result: dict) -> Figure | None:
    """The reader-study forest plot: per annotator, the model's accuracy minus theirs on
    their paired images with a 95 % t interval, and the panel's mean difference with its
    Obuchowski-Rockette-Hillis interval (a diamond); one column per model. The margin, when
    the report has one, is a dotted line at -margin."""
    panel = result.get("panel")
    if not panel or not panel["models"] or not panel["n_annotators_included"]:
        return None
    rows = [a for a in panel["annotators"] if a["included"]]
    models = panel["models"]
    figure = Figure(figsize=(3.4 * len(models) + 1.2, 0.3 * len(rows) + 1.8))
    axes = figure.subplots(1, len(models), sharey=True, squeeze=False)[0]
    y = np.arange(len(rows) + 1)[::-1]  # annotators top down, the panel's mean at the bottom
    for ax, model in zip(axes, models):
        name = model["name"]
        for row, at in zip(rows, y[:-1]):
            difference, (lo, hi) = row["differences"].get(name), row.get("differences_ci95", {}).get(name, [None, None])
            if difference is None:
                continue
            if lo is not None:
                ax.plot([100 * lo, 100 * hi], [at, at], color=OTHER_COLOR, linewidth=1.5)
            ax.plot(100 * difference, at, "s", color=MODEL_COLOR, markersize=4)
        if model["difference"] is not None:
            lo, hi = model["ci95"]
            if lo is not None:
                ax.plot([100 * lo, 100 * hi], [y[-1], y[-1]], color=HUMAN_COLOR, linewidth=2.5)
            ax.plot(100 * model["difference"], y[-1], "D", color=HUMAN_COLOR, markersize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        if result.get("margin") is not None:
            ax.axvline(-100 * result["margin"], color="black", linestyle=":", linewidth=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("model - annotator (points)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [r["annotator"] for r in rows] + ["panel mean"])
    return figure


# --------------------------------------------------------------------------- HTML


def with_figures(sections: list[dict]) -> list[dict]:
    """The sections ready for a template: each table's cells with whether they are numbers,
    each figure drawn as an inline PNG (``data:`` URI; one that has nothing to show is left
    out)."""
    ready = []
    for section in sections:
        blocks = []
        for block in section["blocks"]:
            if block["kind"] == "figure":
                figure = block["draw"]()
                if figure is None:
                    continue
                block = {**block, "src": figure_to_data_uri(figure)}
            elif block["kind"] == "table":
                block = {**block, "body": [{"css": css, "cells": list(zip(row, block["numeric"]))}
                                           for row, css in zip(block["rows"], block["row_classes"])]}
            blocks.append(block)
        ready.append({**section, "blocks": blocks})
    return ready


def render_report_html(result: dict) -> str:
    """One self-contained HTML page of the report (figures inlined, no links), rendered by
    the same template as the staff page's report."""
    from django.template.loader import render_to_string

    return render_to_string("evaluation/report_download.html",
                            {"title": report_title(result), "sections": with_figures(report_sections(result))})


# --------------------------------------------------------------------------- staff pages


def page_context(result: dict) -> dict:
    """What the staff report page shows of ``result``: the report's sections."""
    return {"sections": with_figures(report_sections(result))}


def _table_context(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]):
    """A table for a template: its header, and each row as (cell, is numeric) pairs."""
    return {"header": list(header), "rows": [list(zip(row, numeric)) for row in rows]}


# --------------------------------------------------------------------------- annotator quality


def quality_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """The annotator quality table (``services.annotator_quality``) as text cells."""
    header = ["annotator", "votes", "images", "median s", "agreement", "agreement 95 % CI", "kappa",
              "top answer", "control", "control 95 % CI", "n flags"]
    rows = []
    for a in result["annotators"]:
        top = "n/a" if a["top_answer"] is None else f"{a['top_answer']} {percent_text(a['top_answer_share'], 0)}"
        control = "n/a" if a["control_accuracy"] is None else f"{percent_text(a['control_accuracy'])} of {a['control_votes']}"
        rows.append([
            a["annotator"] + (" (excluded)" if a["excluded"] else ""), str(a["n_votes"]), str(a["n_images"]),
            "n/a" if a["median_seconds"] is None else f"{a['median_seconds']:.1f}",
            percent_text(a["loo_agreement"]), _interval_text(a["loo_ci95"]), decimal_text(a["cohens_kappa"], 2),
            top, control, _interval_text(a["control_ci95"]), str(len(a["flags"])),
        ])
    return header, rows


def confusion_shades(counts, labels: Sequence[str]) -> list[dict]:
    """An annotator's votes against the others' majority as rows of cells for a small heat
    map in HTML (each cell's count, row percentage and a shade 0-9 for its CSS class): no
    image to draw, so the page stays fast with many annotators."""
    counts = np.asarray(counts, dtype=int)
    rows = []
    for label, row in zip(labels, counts):
        total = row.sum()
        rows.append({"label": label, "cells": [
            {"count": int(n), "percent": round(100 * n / total) if total else None,
             "shade": round(9 * n / total) if total else 0} for n in row]})
    return rows


# --------------------------------------------------------------------------- planning


def plan_sentences(result: dict) -> list[str]:
    """The planner page's question and its pilot, in words."""
    c = result["components"]
    question = (f"to show non-inferiority within {100 * result['margin']:g} points (one-sided at {result['alpha']:g})"
                if result["margin"] is not None else f"to find a difference (two-sided at {result['alpha']:g})")
    return [
        f"For a true difference of {_signed_points_text(result['difference'])} points, {result['target']:.0%} power "
        f"{question}, every annotator labelling every image:",
        f"Pilot: annotators {100 * c['human_accuracy']:.1f} %, model {100 * c['model_accuracy']:.1f} % against the "
        f"others' majority on {c['n_images']:.0f} images each ({c['n_annotators']} annotators); variance components: "
        f"annotators {c['var_reader']:.3g}, error {c['var_error']:.3g}, covariance of two annotators {c['cov2']:.3g}.",
    ]


def plan_table(result: dict) -> dict:
    """The planner page's table (``plans.compute``'s result) for its template."""
    rows = [[str(r["n_annotators"]),
             f"{r['images_needed']:,}" if r["images_needed"] is not None else "none is enough",
             f"{r['power_at_pilot_images']:.0%}"] for r in result["rows"]]
    header = ["annotators", "images needed", f"power with {result['components']['n_images']:.0f} images"]
    return _table_context(header, rows, [True, True, True])


def power_figure(result: dict) -> Figure:
    """Power against the images each annotator labels, one line per number of annotators,
    the target power dashed."""
    figure = Figure(figsize=(6.4, 3.8))
    ax = figure.subplots()
    for k, (annotators, curve) in enumerate(result["curves"].items()):
        ax.plot(result["curve_images"], [100 * p for p in curve], color=PANEL_MODEL_COLORS[k % len(PANEL_MODEL_COLORS)],
                label=f"{annotators} annotators")
    ax.axhline(100 * result["target"], color="black", linestyle="--", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 100)
    ax.set_xlabel("images each annotator labels")
    ax.set_ylabel("power (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return figure


def plan_lines(components, rows, difference: float, target: float, alpha: float, margin: float | None,
               source: str) -> list[str]:
    """The planner's answer as text: what it assumed, then images per number of annotators."""
    c = components
    question = (f"to show non-inferiority within {100 * margin:g} points (one-sided at {alpha:g})" if margin is not None
                else f"to find a difference (two-sided at {alpha:g})")
    lines = [
        f"Planned from {source}: annotators {100 * c.human_accuracy:.1f} %, model {100 * c.model_accuracy:.1f} % "
        f"against the others' majority on {c.n_images:.0f} images each ({c.n_annotators} annotators).",
        f"Variance components per image set of that size: annotators {c.var_reader:.3g}, error {c.var_error:.3g}, "
        f"covariance of two annotators {c.cov2:.3g} (Obuchowski-Rockette-Hillis; Hillis, Obuchowski and Berbaum 2011).",
        f"For a true difference of {_signed_points_text(difference)} points, {target:.0%} power {question}, "
        "every annotator labelling every image:",
    ]
    header, table = ["annotators", "images needed", f"power with {c.n_images:.0f} images"], []
    for row in rows:
        table.append([str(row.n_annotators),
                      f"{row.images_needed:,}" if row.images_needed is not None else "none is enough",
                      f"{row.power_at_pilot_images:.0%}"])
    lines += _table(header, table, [True, True, True])
    if any(row.images_needed is None for row in rows):
        lines.append("'none is enough': the annotators differ too much among themselves; more annotators, "
                     "not more images, give the power.")
    return lines
