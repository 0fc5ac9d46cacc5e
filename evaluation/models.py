"""The prediction store: each network's probabilities on each image, computed once.

A report of a study with another held-out annotator, another reference or another label
set, the web page after the command, and an ensemble beside its members all use the
probabilities already computed. The key is content, not names: a network by its file's
content hash (an ensemble's member by its own, or by the ensemble's and its place), its
test-time augmentation and precision, and an image by its content hash; a model file
replaced under the same name is another network.
"""
from django.db import models


class StoredPrediction(models.Model):
    network = models.CharField(max_length=100)  # Predictor.key
    path = models.CharField(max_length=40)  # test-time augmentation / precision, e.g. "flip/bf16"
    image_sha256 = models.CharField(max_length=64)
    # float32 probabilities over the network's own classes, in their order
    probabilities = models.BinaryField()
    model_name = models.CharField(max_length=200, blank=True)  # the name it was first asked by, for staff
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["network", "path", "image_sha256"], name="one_prediction_per_network_image"),
        ]

    def __str__(self):
        return f"{self.model_name or self.network[:12]} ({self.path}) on {self.image_sha256[:12]}"
