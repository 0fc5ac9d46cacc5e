from django import forms

from ferml.labels import LABEL_SETS

from .benchmark_core import ALL, AUTO, DEFAULT_MIN_IMAGES
from .metrics import DAWID_SKENE, MAJORITY
from .quality import Thresholds
from .services import DEFAULT_LABEL_SET


class BenchmarkForm(forms.Form):
    """The staff report's choices: who is held out, against which reference, which labels
    and models."""

    holdout = forms.ChoiceField(label="Held-out annotator")
    reference = forms.ChoiceField(
        label="Reference",
        required=False,
        choices=[
            (MAJORITY, "majority of the other annotators"),
            (DAWID_SKENE, "Dawid-Skene estimate from the other annotators' votes"),
        ],
    )
    min_images = forms.IntegerField(
        label="Panel: minimum paired images", min_value=2, required=False,
        help_text="With every annotator in turn, annotators with fewer paired images are "
                  "listed but left out of the means.",
    )
    labels = forms.ChoiceField(
        label="Labels",
        help_text="The test set's own scheme, or a bin set its labels map into (the votes are "
                  "binned after they were cast).",
    )
    models = forms.MultipleChoiceField(
        label="Models", required=False, widget=forms.CheckboxSelectMultiple
    )
    seed = forms.IntegerField(
        label="Bootstrap seed", min_value=0, required=False,
        help_text="Seed of the 95 % confidence intervals.",
    )
    margin = forms.FloatField(
        label="Non-inferiority margin (points)", required=False, min_value=0.01, max_value=99.99,
        help_text="Chosen before the study: adds a one-sided test that the model is not worse than "
                  "people by more than this many percentage points.",
    )

    def __init__(self, *args, annotators: list[str], model_names: list[str],
                 label_choices: list[tuple[str, list[str]]] = (("bin3", LABEL_SETS["bin3"]),), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["labels"].choices = [(name, f"{name}: {' / '.join(labels)}") for name, labels in label_choices]
        self.fields["holdout"].choices = [
            (AUTO, "auto (median leave-one-out agreement)"),
            (ALL, "all: every annotator in turn (the panel)"),
        ] + [(name, name) for name in annotators]
        self.fields["models"].choices = [(name, name) for name in model_names]

    def clean_reference(self) -> str:
        return self.cleaned_data["reference"] or MAJORITY

    def clean_min_images(self) -> int:
        value = self.cleaned_data["min_images"]
        return DEFAULT_MIN_IMAGES if value is None else value

    @staticmethod
    def default_data(model_names: list[str], labels: str = DEFAULT_LABEL_SET) -> dict:
        """What the page shows before any choice: auto holdout, majority reference, the test
        set's own labels, every available model."""
        return {
            "holdout": AUTO, "reference": MAJORITY, "min_images": DEFAULT_MIN_IMAGES,
            "labels": labels, "models": list(model_names), "seed": 0,
        }


class QualityForm(forms.Form):
    """The flag thresholds of the annotator quality page."""

    min_seconds = forms.FloatField(label="Flag a median time per vote under (s)", min_value=0, required=False)
    max_share = forms.FloatField(label="Flag one answer in more than this share of the votes", min_value=0.01,
                                 max_value=1, required=False)

    @staticmethod
    def default_thresholds() -> Thresholds:
        return Thresholds()

    def thresholds(self) -> Thresholds:
        d, default = self.cleaned_data, Thresholds()
        return Thresholds(default.min_median_seconds if d.get("min_seconds") is None else d["min_seconds"],
                          default.max_label_share if d.get("max_share") is None else d["max_share"])
