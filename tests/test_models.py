"""EMMA's networks: published key names and shapes, checkpoint loading, fast == reference."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

from fusion_perception.errors import DatasetError
from fusion_perception.emma.checkpoint import infer_ufuser_config, load_official_checkpoint, save_official_state_dict
from fusion_perception.emma.sensing_unet import SensingUNet
from fusion_perception.emma.ufuser import UFuser

NARROW_SENSING = (4, 8, 8, 16, 16)


def _listing(shared_dir: Path, name: str) -> list[tuple[str, tuple[int, ...]]]:
    path = shared_dir / "design" / name  # shared_dir (conftest) honours FUSION_PERCEPTION_SHARED
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            key, shape = line.split("\t")
            rows.append((key, tuple(ast.literal_eval(shape))))
    return rows


def _perturb(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Move the parameters initialised to constants (attention scale, layer/batch norm) off them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point() and ("scale" in name or "norm" in name or ".conv.1." in name or ".conv.4." in name):
                t.add_(0.3 * torch.randn(t.shape, generator=g)).abs_() if "running_var" in name else \
                    t.add_(0.3 * torch.randn(t.shape, generator=g))
    return model


def _pair(b: int = 1, h: int = 32, w: int = 48, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Smooth-ish images (blurred noise), closer to photographs than white noise.
    x = torch.nn.functional.avg_pool2d(torch.rand(b, 2, h + 4, w + 4, generator=g), 5, stride=1)
    return x[:, :1].contiguous(), x[:, 1:].contiguous()


def test_ufuser_keys_and_shapes_match_published_listing(shared_dir):
    model = UFuser()
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == _listing(shared_dir, "official_ufuser_state_dict.tsv")
    assert sum(p.numel() for p in model.parameters()) == 1_517_657


def test_sensing_unet_keys_and_shapes_match_published_listing(shared_dir):
    with torch.device("meta"):  # published widths: shapes only, no 160 MB of weights
        model = SensingUNet()
    got = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert got == _listing(shared_dir, "official_sensing_unet5_state_dict.tsv")


def test_ufuser_output_shape_range_and_narrow_heads():
    model = UFuser((4, 4, 8, 8), heads=4).eval()
    ir, vi = _pair(2, 16, 24)
    with torch.no_grad():
        out = model(ir, vi)
    assert out.shape == (2, 1, 16, 24)
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0
    with pytest.raises(ValueError, match="multiples of heads"):
        UFuser((8, 12, 16, 16), heads=8)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_path_equals_reference_forward_and_backward(channels_last):
    torch.manual_seed(0)
    fast = _perturb(UFuser((8, 8, 16, 16)))
    ref = UFuser((8, 8, 16, 16), fast=False)
    ref.load_state_dict(fast.state_dict())
    ir, vi = _pair(2, 32, 40)
    if channels_last:
        fast.to(memory_format=torch.channels_last)
        ir_f, vi_f = (t.contiguous(memory_format=torch.channels_last) for t in (ir, vi))
    else:
        ir_f, vi_f = ir, vi
    out_f, out_r = fast(ir_f, vi_f), ref(ir, vi)
    torch.testing.assert_close(out_f, out_r, rtol=0, atol=2e-6)
    # Training goes through the fast path too: its gradients must be the reference's.
    out_f.square().mean().backward()
    out_r.square().mean().backward()
    for (name, p_f), p_r in zip(fast.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p_f.grad, p_r.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_save_under_published_names_and_reload_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    fuser = _perturb(UFuser()).eval()
    sensing = _perturb(SensingUNet(NARROW_SENSING)).eval()
    save_official_state_dict(fuser, tmp_path / "EMMA.pth")
    save_official_state_dict(sensing, tmp_path / "Ai.pth")
    assert list(torch.load(tmp_path / "EMMA.pth", weights_only=True)) == list(fuser.state_dict())

    f2 = load_official_checkpoint(tmp_path / "EMMA.pth")
    s2 = load_official_checkpoint(tmp_path / "Ai.pth", kind="sensing")
    assert isinstance(f2, UFuser) and f2.channels == (8, 16, 32, 32) and not f2.training
    assert isinstance(s2, SensingUNet) and s2.widths == NARROW_SENSING and not s2.training
    ir, vi = _pair(1, 32, 32)
    with torch.no_grad():
        assert torch.equal(f2(ir, vi), fuser(ir, vi))
        assert torch.equal(s2(ir), sensing(ir))


def test_narrow_widths_are_inferred(tmp_path):
    for channels, heads in (((8, 8, 16, 16), 8), ((4, 4, 8, 8), 4)):
        save_official_state_dict(UFuser(channels, heads=heads), tmp_path / "f.pth")
        model = load_official_checkpoint(tmp_path / "f.pth", kind="ufuser")
        assert (model.channels, model.heads) == (channels, heads)
        assert infer_ufuser_config(model.state_dict()) == {"channels": channels, "heads": heads}


def test_wrong_files_fail_naming_the_keys(tmp_path):
    save_official_state_dict(SensingUNet(NARROW_SENSING), tmp_path / "Av.pth")
    with pytest.raises(DatasetError) as e:
        load_official_checkpoint(tmp_path / "Av.pth", kind="ufuser")
    msg = str(e.value)
    assert "Av.pth" in msg and "missing keys" in msg and "unexpected keys" in msg
    assert "V_en_1.embed.weight" in msg and "down1.conv.0.weight" in msg

    torch.save({"encoder.weight": torch.zeros(3, 3), "step": torch.tensor(5)}, tmp_path / "random.pth")
    with pytest.raises(DatasetError, match=r"random\.pth.*missing keys.*unexpected keys.*encoder\.weight"):
        load_official_checkpoint(tmp_path / "random.pth")

    (tmp_path / "notes.pth").write_text("not a checkpoint")
    with pytest.raises(DatasetError, match=r"notes\.pth: not a PyTorch weights file") as err:
        load_official_checkpoint(tmp_path / "notes.pth")
    assert "weights_only` set to `False`" not in str(err.value)  # torch's advice to drop the safety is not relayed
    with pytest.raises(DatasetError, match="not found"):
        load_official_checkpoint(tmp_path / "absent.pth")

    # Right keys, inconsistent shapes: named too.
    sd = UFuser((8, 8, 16, 16)).state_dict()
    sd["f_3.FFN.weight"] = torch.zeros(16, 16, 3, 3)
    torch.save(sd, tmp_path / "bad_shape.pth")
    with pytest.raises(DatasetError, match=r"wrong shape.*f_3\.FFN\.weight"):
        load_official_checkpoint(tmp_path / "bad_shape.pth")


def test_mmengine_checkpoint_with_prefixes_loads(tmp_path):
    """A checkpoint trained here: mmengine's dict, the fuser under ``fuser.``, message hub included."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import save_checkpoint

    torch.manual_seed(2)
    fuser = _perturb(UFuser((8, 8, 16, 16))).eval()
    s_i, s_v = SensingUNet(NARROW_SENSING).eval(), _perturb(SensingUNet(NARROW_SENSING)).eval()
    state = {f"fuser.{k}": v for k, v in fuser.state_dict().items()}
    state.update({f"sensing_i.{k}": v for k, v in s_i.state_dict().items()})
    state.update({f"sensing_v.{k}": v for k, v in s_v.state_dict().items()})
    hub = MessageHub.get_instance("test_models_ckpt")
    hub.update_scalar("train/loss", 0.25)
    ckpt = {"meta": {"epoch": 3, "iter": 30}, "state_dict": state, "message_hub": hub.state_dict()}
    save_checkpoint(ckpt, str(tmp_path / "epoch_3.pth"))

    loaded = load_official_checkpoint(tmp_path / "epoch_3.pth")  # auto: the fuser
    assert isinstance(loaded, UFuser) and loaded.channels == (8, 8, 16, 16)
    ir, vi = _pair(1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(ir, vi), fuser(ir, vi))
        with pytest.raises(DatasetError, match="sensing_i.*sensing_v.*prefix"):
            load_official_checkpoint(tmp_path / "epoch_3.pth", kind="sensing")
        sv = load_official_checkpoint(tmp_path / "epoch_3.pth", kind="sensing", prefix="sensing_v")
        assert torch.equal(sv(ir), s_v(ir))

    # A single network under "net." (a sensing-module run) loads without naming the prefix.
    save_checkpoint({"meta": {}, "state_dict": {f"net.{k}": v for k, v in s_v.state_dict().items()}},
                    str(tmp_path / "sensing.pth"))
    assert isinstance(load_official_checkpoint(tmp_path / "sensing.pth"), SensingUNet)
