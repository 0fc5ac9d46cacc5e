from django import forms


class ImportImagesForm(forms.Form):
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


class ImportVotesForm(forms.Form):
    csv_file = forms.FileField(label="Votes csv", help_text="Columns image,annotator,label (UTF-8).")
    testset = forms.SlugField(label="Test set", max_length=100)
    overwrite = forms.BooleanField(label="Replace votes that differ from the file", required=False)


class ExportForm(forms.Form):
    balanced = forms.BooleanField(required=False)
    seed = forms.IntegerField(required=False, initial=0, min_value=0)
