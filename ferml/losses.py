"""Loss functions (thesis 5.2.2 and 7.1.1), for hard labels or for soft targets."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def svm_l2_loss(scores: torch.Tensor, target: torch.Tensor, delta: float = 1.0, label_smoothing: float = 0.0) -> torch.Tensor:
    """L2 multiclass SVM loss exactly as thesis eq. 33:
    L = 1/N * sqrt(sum_i sum_{j != y_i} max(0, s_j - s_{y_i} + delta)^2).
    Every wrong class counts (not only the strongest, unlike Keras' hinge). Hard labels only."""
    if target.is_floating_point() or label_smoothing:
        raise ValueError("the SVM loss takes hard labels only: no soft targets, mixup or label smoothing")
    correct = scores.gather(1, target[:, None])
    margins = (scores - correct + delta).clamp_min(0).scatter(1, target[:, None], 0.0)
    # a tiny floor keeps the sqrt's gradient finite when every margin is satisfied
    return (margins.pow(2).sum() + 1e-12).sqrt() / scores.shape[0]


def cross_entropy_loss(scores: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy. ``target``: class indices (N,), or a distribution over the classes
    (N, K) such as the crowd's vote shares (Barsoum et al. 2016, "probabilistic label
    drawing"'s expectation): -sum_k t_k log softmax(s)_k. Label smoothing mixes the target
    with the uniform distribution: t' = (1 - e) t + e / K."""
    if not target.is_floating_point():
        return F.cross_entropy(scores, target, label_smoothing=label_smoothing)
    k = scores.shape[1]
    target = target * (1 - label_smoothing) + label_smoothing / k
    return -(target * F.log_softmax(scores, 1)).sum(1).mean()


LOSSES = {"ce": cross_entropy_loss, "svm": svm_l2_loss}
