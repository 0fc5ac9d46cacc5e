from django import forms

from ferml.labels import LABEL_SETS

from .benchmark_core import ALL, AUTO, DEFAULT_MIN_IMAGES
from .heldout_scoring import DAWID_SKENE, MAJORITY
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
    uploads = forms.MultipleChoiceField(required=False, widget=forms.MultipleHiddenInput)
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
        # models uploaded for this report: any kept file may be named (uploads.as_models checks it)
        self.fields["uploads"].choices = [(value, value) for value in self.data.getlist("uploads")] \
            if hasattr(self.data, "getlist") else []

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


class PlanForm(forms.Form):
    """The study planner's choices, for a pilot study."""

    model = forms.ChoiceField(label="Model the pilot compares")
    difference = forms.FloatField(label="True difference to plan for (points)", required=False,
                                  help_text="Empty: the pilot's own difference.")
    margin = forms.FloatField(label="Non-inferiority margin (points)", required=False, min_value=0.01,
                              max_value=99.99, help_text="Plan to show non-inferiority instead of a difference.")
    alpha = forms.FloatField(label="Alpha", initial=0.05, min_value=0.001, max_value=0.5)
    power = forms.FloatField(label="Power", initial=0.8, min_value=0.05, max_value=0.999)
    annotators = forms.CharField(label="Numbers of annotators", initial="5, 10, 20, 40")

    def __init__(self, *args, model_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(name, name) for name in model_names]

    def clean_annotators(self) -> list[int]:
        try:
            numbers = sorted({int(x) for x in self.cleaned_data["annotators"].replace(",", " ").split()})
        except ValueError:
            raise forms.ValidationError("Give whole numbers, e.g. 5, 10, 20.") from None
        if not numbers or numbers[0] < 2 or numbers[-1] > 1000 or len(numbers) > 8:
            raise forms.ValidationError("Give one to eight numbers of annotators, each 2 to 1000.")
        return numbers

    def options(self) -> dict:
        d = self.cleaned_data
        return {"model": d["model"], "difference": d["difference"], "margin": d["margin"], "alpha": d["alpha"],
                "power": d["power"], "annotators": d["annotators"], "labels": None, "min_images": 20}


class ModelUploadForm(forms.Form):
    """A model brought to one report: an ONNX file or a prediction csv."""

    file = forms.FileField(label="ONNX model (.onnx) or prediction file (.csv)")
    name = forms.CharField(label="Its name in the report", max_length=60)
    metadata = forms.FileField(label="Metadata JSON (for an ONNX model whose file holds none)", required=False)
