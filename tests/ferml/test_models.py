import pytest
import torch

import ferml
from ferml.models import UnknownModelError, create_model, list_models

REQUIRED = [
    "bkstart", "bkmin", "bkvgg12", "andreas100", "resnet18", "resnet34", "resnet50",
    "dense121", "dense169", "dense161", "dense121_red", "dense169_red", "dense161_red",
]


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def conv(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def fc(cin, cout):
    return cin * cout + cout


def bn(c):
    return 2 * c


def test_registry_has_every_thesis_model_and_its_100px_form():
    names = set(list_models())
    assert set(REQUIRED) <= names
    for family in ["resnet18", "resnet34", "resnet50", "dense121", "dense169", "dense161",
                   "dense121_red", "dense169_red", "dense161_red"]:
        assert f"{family}_100" in names
    assert ferml.list_models() == list_models()


def test_unknown_name_lists_known_models():
    with pytest.raises(UnknownModelError) as err:
        create_model("dense122")
    assert "dense122" in str(err.value) and "dense121_100" in str(err.value)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_pass_shape(name, channels):
    model = create_model(name, num_classes=3, in_channels=channels).eval()
    size = model.input_size
    assert size == (100 if name.endswith("100") else 42)
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 3)


def test_bkvgg12_parameters_by_hand():
    convs = (conv(1, 32, 3) + conv(32, 32, 3) + conv(32, 64, 3) + conv(64, 64, 3)
             + conv(64, 128, 3) + conv(128, 128, 3) + conv(128, 256, 3) + 2 * conv(256, 256, 3))
    # 42 -> 21 -> 10 -> 5 after three 2x2 max-pools: 256 * 5 * 5 features
    fcs = fc(256 * 5 * 5, 256) + fc(256, 256) + fc(256, 7)
    assert convs + fcs == 3_468_007
    assert n_params(create_model("bkvgg12")) == convs + fcs


def test_bkstart_and_bkmin_parameters_by_hand():
    convs = conv(1, 32, 5) + conv(32, 32, 4) + conv(32, 64, 5)
    # padded: 42 -> pool3/2 20 -> pool3/2 9 -> pool3/2 4
    bkstart = convs + fc(64 * 4 * 4, 3072) + fc(3072, 7)
    # unpadded: 42 -conv5-> 38 -pool-> 18 -conv4-> 15 -pool-> 7 -conv5-> 3 -pool-> 1
    bkmin = convs + fc(64 * 1 * 1, 3072) + fc(3072, 7)
    assert n_params(create_model("bkstart")) == bkstart == 3_238_823
    assert n_params(create_model("bkmin")) == bkmin == 289_703
    assert 10 <= bkstart / bkmin <= 12  # thesis: padding grows the count "roughly by a factor 10"


def test_resnet18_parameters_by_hand():
    stem = conv(1, 64, 7, bias=False) + bn(64)
    basic = lambda cin, c: conv(cin, c, 3, False) + bn(c) + conv(c, c, 3, False) + bn(c)  # noqa: E731
    project = lambda cin, c: conv(cin, c, 1, False) + bn(c)  # noqa: E731
    stages = 2 * basic(64, 64)
    for cin, c in [(64, 128), (128, 256), (256, 512)]:
        stages += basic(cin, c) + project(cin, c) + basic(c, c)
    total = stem + stages + fc(512, 7)
    assert n_params(create_model("resnet18")) == total


def test_dense121_parameters_by_hand():
    k, channels = 32, 64
    total = conv(1, 64, 7, bias=False) + bn(64)
    for i, layers in enumerate((6, 12, 24, 16)):
        for _ in range(layers):
            total += bn(channels) + conv(channels, 4 * k, 1, False) + bn(4 * k) + conv(4 * k, k, 3, False)
            channels += k
        if i < 3:  # transition: BN + 1x1 compression to half the maps
            total += bn(channels) + conv(channels, channels // 2, 1, False)
            channels //= 2
    total += bn(channels) + fc(channels, 7)
    assert channels == 1024
    assert n_params(create_model("dense121")) == total


def test_dropout_schedule_is_checked():
    with pytest.raises(ValueError, match="takes 3 dropout rates"):
        create_model("bkvgg12", dropout=[0.1, 0.2])
    model = create_model("dense121", dropout=[0, 0, 0, 0])
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
