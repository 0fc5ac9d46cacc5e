from django import forms

from ferml.labels import LABEL_SETS, VOTE_LABEL_SETS

from .benchmark_core import AUTO
from .services import DEFAULT_LABEL_SET


class BenchmarkForm(forms.Form):
    """The staff report's choices: who is held out, which labels, which models."""

    holdout = forms.ChoiceField(label="Held-out annotator")
    labels = forms.ChoiceField(
        label="Labels",
        choices=[
            (name, f"{name}: {' / '.join(LABEL_SETS[name])}") for name in VOTE_LABEL_SETS
        ],
    )
    models = forms.MultipleChoiceField(
        label="Models", required=False, widget=forms.CheckboxSelectMultiple
    )
    seed = forms.IntegerField(
        label="Bootstrap seed", min_value=0, required=False,
        help_text="Seed of the 95 % confidence intervals.",
    )

    def __init__(self, *args, annotators: list[str], model_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["holdout"].choices = [(AUTO, "auto (median leave-one-out agreement)")] + [
            (name, name) for name in annotators
        ]
        self.fields["models"].choices = [(name, name) for name in model_names]

    @staticmethod
    def default_data(model_names: list[str]) -> dict:
        """What the page shows before any choice: auto holdout, bin3, every available model."""
        return {
            "holdout": AUTO, "labels": DEFAULT_LABEL_SET, "models": list(model_names), "seed": 0
        }
