"""Terminal and HTML rendering of the benchmark dict."""

import base64
import re

import pytest

from evaluation.benchmark_core import build_benchmark_result
from evaluation.report import format_report_text, render_report_html
from ferml.ferplus import ferplus_votes

BIN3 = ["negative", "neutral", "positive"]


@pytest.fixture(scope="module")
def result(ferplus_sample_csv):
    votes = ferplus_votes(ferplus_sample_csv)
    images = votes["image"].unique()
    models = {
        "always_neutral": dict.fromkeys(images, "neutral"),
        "<b>odd name</b>": dict.fromkeys(images, "positive"),
    }
    return build_benchmark_result(
        votes, BIN3, model_predictions=models, testset_name="ferplus-sample", n_resamples=200
    )


# The promised schema and nothing more, with undefined figures as None.
MINIMAL = {
    "testset": {"name": "tiny", "n_images": 2, "n_annotators": 2, "n_votes": 4, "n_ties": 1},
    "labels": ["non-positive", "positive"],
    "agreement": {
        "accuracy": 1.0,
        "loo_accuracy": None,
        "fleiss_kappa": None,
        "krippendorff_alpha": None,
    },
    "holdout": {
        "annotator": "ann",
        "n_images": 1,
        "accuracy": 1.0,
        "ci95": [1.0, 1.0],
        "confusion": [[None, None], [0.0, 1.0]],
    },
    "models": [
        {
            "name": "m",
            "n_images": 1,
            "accuracy": 0.0,
            "ci95": [0.0, 0.0],
            "mcnemar_p": 1.0,
            "confusion": [[None, None], [1.0, 0.0]],
        }
    ],
}


def test_text_report_shows_every_figure(result):
    text = format_report_text(result)
    holdout = result["holdout"]
    assert "ferplus-sample" in text
    assert f"{result['testset']['n_images']} images, 10 annotators" in text
    assert f"{100 * result['agreement']['accuracy']:.1f} %" in text
    assert f"{result['agreement']['fleiss_kappa']:.3f}" in text
    assert f"Held-out annotator {holdout['annotator']} (auto" in text
    human_line = next(
        line
        for line in text.splitlines()
        if line.strip().startswith(f"human ({holdout['annotator']})")
    )
    lo, hi = holdout["ci95"]
    assert f"{100 * holdout['accuracy']:.1f} %" in human_line
    assert f"[{100 * lo:.1f}, {100 * hi:.1f}]" in human_line
    neutral = result["models"][0]
    model_line = next(
        line for line in text.splitlines() if line.strip().startswith("always_neutral")
    )
    assert f"{100 * neutral['accuracy']:.1f} %" in model_line
    assert f"{neutral['mcnemar_p']:.1e}" in model_line
    assert text.count("reference \\ predicted") == 3  # human and two models
    assert re.search(r"negative\s+0\.0\s+100\.0\s+0\.0", text)  # always-neutral confusion row
    assert "held out" in text and "2000" not in text and "200 resamples" in text


def test_minimal_schema_renders_with_undefined_figures():
    text = format_report_text(MINIMAL)
    assert "tiny" in text and "n/a" in text
    page = render_report_html(MINIMAL)
    assert page.startswith("<!DOCTYPE html>") and "n/a" in page


def test_html_page_is_self_contained_with_png_figures(result):
    page = render_report_html(result)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    sources = re.findall(r'src="([^"]+)"', page)
    assert len(sources) == 3  # accuracy bars, confusion matrices, per-annotator agreement
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<link" not in page and "<script" not in page
    assert "&lt;b&gt;odd name&lt;/b&gt;" in page and "<b>odd name</b>" not in page
    assert f"Held-out annotator {result['holdout']['annotator']}" in page


def section_texts(result):
    """Every heading, sentence and table cell of the report's sections."""
    from evaluation.report import report_sections

    texts = []
    for section in report_sections(result):
        texts += [section["heading"]] if section["heading"] else []
        for block in section["blocks"]:
            if block["kind"] == "paragraph":
                texts.append(block["text"])
            elif block["kind"] == "table":
                texts += block["header"] + [cell for row in block["rows"] for cell in row if cell]
    return texts


def test_the_terminal_and_the_html_download_render_the_same_sections(result):
    import html

    texts = section_texts(result)
    assert len(texts) > 40 and any("Held-out annotator" in t for t in texts)
    text, page = format_report_text(result), render_report_html(result)
    for item in texts:
        assert item in text, item
        assert html.escape(item) in page, item
