from django import forms

from core.errors import InputError
from ferml.labels import CUSTOM_SCHEME, EXTRA_ANSWERS, LABEL_SETS, SCHEMES

from .overlap import DECIDED, UNANIMOUS
from .testsets import check_label_scheme, check_overlap


class OverlapFields(forms.Form):
    """Votes per image from a pool, adaptive overlap and control images: the fields a new
    test set is created with and staff change later (``testsets.check_overlap``)."""

    votes_per_image = forms.IntegerField(
        label="Votes per image", required=False, min_value=1,
        help_text="Empty: every annotator labels every image. N: each image gets N votes from the pool "
                  "of annotators, fewest votes first.")
    max_votes_per_image = forms.IntegerField(
        label="Adaptive: at most", required=False, min_value=1,
        help_text="Above votes per image: an image stops at votes per image by the stop rule, "
                  "otherwise it gets votes up to this.")
    adaptive_stop = forms.ChoiceField(
        label="Stop rule", required=False, initial=UNANIMOUS,
        choices=[(UNANIMOUS, "unanimous: every vote agrees"),
                 (DECIDED, "decided: no vote up to the maximum could change the majority")])
    control_rate = forms.IntegerField(
        label="Control images: one in", required=False, min_value=0, initial=20,
        help_text="How often a control image (known answer) is served; 0: never.")
    control_feedback = forms.BooleanField(
        label="Show the expected answer after a vote on a control image (a training phase)", required=False)

    def overlap(self):
        """The cleaned fields as a checked Overlap, or None with the problem added to the form."""
        d = self.cleaned_data
        try:
            return check_overlap(d.get("votes_per_image"), d.get("max_votes_per_image"),
                                 d.get("adaptive_stop") or UNANIMOUS,
                                 20 if d.get("control_rate") is None else d["control_rate"],
                                 d.get("control_feedback", False))
        except InputError as exc:
            self.add_error(None, str(exc))
            return None


class ImportImagesForm(OverlapFields):
    zip_file = forms.FileField(label="Zip of images", help_text="Keys are the paths inside the zip.")
    name = forms.SlugField(
        label="Test set name", required=False, max_length=100,
        help_text="Leave empty to use the zip's file name.",
    )
    detect_faces = forms.BooleanField(label="Crop the largest face (OpenCV)", required=False)
    min_face = forms.IntegerField(
        label="Minimum face size (px)", min_value=0, initial=0, required=False,
        help_text="Faces smaller than this are skipped; the thesis used 100.",
    )
    labels = forms.ChoiceField(
        label="Label scheme (fixed once the test set exists)", initial="bin3", required=False,
        choices=[(name, f"{name}: {', '.join(LABEL_SETS[name])}") for name in SCHEMES]
        + [(CUSTOM_SCHEME, "custom: the labels below")])
    custom_labels = forms.CharField(
        label="Custom labels", required=False, max_length=500,
        help_text="With the custom scheme: 2 to 9 labels in order, comma-separated (keys 1 to 9).")
    extras = forms.MultipleChoiceField(
        label="Extra answers", required=False, widget=forms.CheckboxSelectMultiple,
        choices=[(name, name) for name in EXTRA_ANSWERS],
        help_text="Stored as votes, counted in the report, in no majority (FER+'s unknown and NF).")

    field_order = ["zip_file", "name", "detect_faces", "min_face", "labels", "custom_labels", "extras"]

    def scheme(self):
        d = self.cleaned_data
        try:
            return check_label_scheme(d.get("labels") or "bin3", d.get("custom_labels", ""), d.get("extras", []))
        except InputError as exc:
            self.add_error("custom_labels" if d.get("labels") == CUSTOM_SCHEME else "labels", str(exc))
            return None


class ImportVotesForm(forms.Form):
    csv_file = forms.FileField(label="Votes csv", help_text="Columns image,annotator,label (UTF-8).")
    testset = forms.SlugField(label="Test set", max_length=100)
    overwrite = forms.BooleanField(label="Replace votes that differ from the file", required=False)


class ExportForm(forms.Form):
    balanced = forms.BooleanField(required=False)
    seed = forms.IntegerField(required=False, initial=0, min_value=0)


class ImportControlsForm(forms.Form):
    """On the import page beside the votes form, so its fields carry the prefix ``controls``."""

    prefix = "controls"
    file = forms.FileField(label="Control images csv",
                           help_text="Columns image,label: the images with a known answer.")
    testset = forms.SlugField(label="Test set", max_length=100)


class DesignForm(OverlapFields):
    """A test set's overlap and control settings, on its page."""


class ControlImageForm(forms.Form):
    image = forms.CharField(label="Image key", max_length=500)
    label = forms.CharField(label="Known answer", required=False, max_length=100,
                            help_text="Empty: a regular image again.")


class ExclusionForm(forms.Form):
    annotator = forms.CharField(max_length=150, widget=forms.HiddenInput)
    reason = forms.CharField(label="Reason", max_length=1000, required=False)
