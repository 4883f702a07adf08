"""Mechanism diagnostics (``bench.eval.mechanism``) on hand-built matrices whose answers are known."""

from __future__ import annotations

import json
import math

import pytest
import torch

from bench.eval import mechanism as mech


def orthonormal(n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q[:, :k], q[:, k:]


def teaching(out: int = 12, inp: int = 10, k: int = 3, seed: int = 0):
    """ΔW_teach = U S Vᵀ of rank k with known bases, and the complements U⊥, V⊥."""
    (u, u_perp), (v, v_perp) = orthonormal(out, k, seed), orthonormal(inp, k, seed + 1)
    delta = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)[:k]) @ v.T
    return delta, u, u_perp, v, v_perp


def unit(m: torch.Tensor) -> torch.Tensor:
    return m / m.norm()


def measure(delta: torch.Tensor, teach: torch.Tensor) -> mech.ModuleMechanism:
    return mech.module_mechanism(delta, mech.subspaces(teach), float((teach ** 2).sum()))


def share(m: mech.ModuleMechanism) -> tuple[float, float, float]:
    return m.inside / m.energy, m.col_inside / m.energy, m.row_inside / m.energy


def test_a_change_inside_the_span_has_share_one_and_zero_angles():
    teach, u, _, v, _ = teaching()
    g = torch.Generator().manual_seed(5)
    inside = u @ torch.randn(3, 3, generator=g, dtype=torch.float64) @ v.T
    m = measure(inside, teach)
    assert share(m) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)
    assert max(m.col_angles_deg + m.row_angles_deg) == pytest.approx(0.0, abs=1e-4)
    assert share(measure(-teach, teach)) == pytest.approx((1.0, 1.0, 1.0), abs=1e-12)  # undoing the teaching


def test_an_orthogonal_change_has_share_zero_and_right_angles():
    teach, _, u_perp, _, v_perp = teaching()
    g = torch.Generator().manual_seed(6)
    outside = u_perp @ torch.randn(u_perp.shape[1], v_perp.shape[1], generator=g, dtype=torch.float64) @ v_perp.T
    m = measure(outside, teach)
    assert share(m) == pytest.approx((0.0, 0.0, 0.0), abs=1e-12)
    assert min(m.col_angles_deg + m.row_angles_deg) == pytest.approx(90.0, abs=1e-6)


def test_a_mix_has_its_known_energy_share_and_one_sided_changes_split():
    teach, u, u_perp, v, v_perp = teaching()
    g = torch.Generator().manual_seed(7)
    inside = unit(u @ torch.randn(3, 3, generator=g, dtype=torch.float64) @ v.T)
    outside = unit(u_perp @ torch.randn(9, 7, generator=g, dtype=torch.float64) @ v_perp.T)
    mixed = math.sqrt(0.3) * inside + math.sqrt(0.7) * outside  # 30 % of the energy inside
    assert share(measure(mixed, teach))[0] == pytest.approx(0.3, abs=1e-12)
    # writes along the teaching's output directions but reads elsewhere: column share 1, row share 0, share 0
    col_only = u @ torch.randn(3, 7, generator=g, dtype=torch.float64) @ v_perp.T
    assert share(measure(col_only, teach)) == pytest.approx((0.0, 1.0, 0.0), abs=1e-12)


def test_principal_angles_of_known_subspaces():
    e = torch.eye(3, dtype=torch.float64)
    theta = math.radians(30)
    line = (math.cos(theta) * e[:, 0] + math.sin(theta) * e[:, 1]).reshape(3, 1)
    assert mech.principal_angles(e[:, :1], line) == pytest.approx([30.0])
    plane = torch.stack([e[:, 0], math.cos(theta) * e[:, 1] + math.sin(theta) * e[:, 2]], dim=1)
    assert mech.principal_angles(e[:, :2], plane) == pytest.approx([0.0, 30.0], abs=1e-6)
    assert mech.principal_angles(e[:, :1], e[:, 1:2]) == pytest.approx([90.0])


def test_subspaces_keep_the_numerical_rank_only():
    teach, u, _, v, _ = teaching()
    noisy = teach + 1e-9 * torch.randn(teach.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert mech.subspaces(noisy).rank == 3  # rounding-level noise is not part of the change
    assert mech.subspaces(teach, max_rank=2).rank == 2
    assert mech.subspaces(torch.zeros(4, 5)).rank == 0


def test_factored_subspaces_match_the_full_svd_of_the_product():
    """The teaching span from the LoRA factors (thin QRs and an r x r SVD) spans the same spaces, with the same
    energy, as the full SVD of B @ A, also when the factors are rank-deficient."""
    g = torch.Generator().manual_seed(11)
    b = torch.randn(40, 6, generator=g, dtype=torch.float64)
    a = torch.randn(6, 30, generator=g, dtype=torch.float64)
    b[:, 5] = b[:, 0] + b[:, 1]  # rank 5, not 6
    full = mech.subspaces(b @ a)
    fast, energy = mech.factored_subspaces(b, a)
    assert fast.rank == full.rank == 5
    assert energy == pytest.approx(float(((b @ a) ** 2).sum()), rel=1e-10)
    projector = lambda q: q @ q.T  # noqa: E731
    assert torch.allclose(projector(fast.cols), projector(full.cols), atol=1e-8)
    assert torch.allclose(projector(fast.rows), projector(full.rows), atol=1e-8)
    assert mech.factored_subspaces(torch.zeros(4, 2), torch.zeros(2, 3))[0].rank == 0


def test_a_random_change_has_the_chance_share():
    """An isotropic Gaussian ΔW puts k_col·k_row/(out·in) of its energy in the span in expectation."""
    out, inp, k = 200, 150, 10
    u, _ = orthonormal(out, k, 1)
    v, _ = orthonormal(inp, k, 2)
    teach = u @ v.T
    shares = [share(measure(torch.randn(out, inp, generator=torch.Generator().manual_seed(s),
                                        dtype=torch.float64), teach))[0] for s in range(20)]
    chance = k * k / (out * inp)
    assert measure(torch.ones(out, inp), teach).chance == pytest.approx(chance)
    assert sum(shares) / len(shares) == pytest.approx(chance, rel=0.1)


def test_kinds_aggregate_by_energy_and_angles_by_mean():
    teach, u, u_perp, v, v_perp = teaching()
    inside = unit(u @ torch.eye(3, dtype=torch.float64) @ v.T)
    outside = unit(u_perp[:, :3] @ v_perp[:, :3].T)
    mods = [measure(inside, teach), measure(math.sqrt(3) * outside, teach)]  # energies 1 and 3
    agg = mech.aggregate(mods)
    assert agg.share == pytest.approx(0.25) and agg.per_layer_share == pytest.approx([1.0, 0.0], abs=1e-12)
    assert agg.col_angle_mean_deg == pytest.approx(45.0, abs=1e-6)  # 0° and 90°
    assert agg.norm_ratio == pytest.approx(math.sqrt(4 / (2 * 14.0)))  # ‖ΔW_teach‖² = 9 + 4 + 1 per module
    assert mech.aggregate([measure(torch.zeros(12, 10, dtype=torch.float64), teach)]).share is None


def write_adapter(folder, deltas_a_b, r=2, alpha=4.0):
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": r, "lora_alpha": alpha}))
    tensors = {}
    for (layer, proj), (a, b) in deltas_a_b.items():
        block = "mlp" if proj in ("gate_proj", "up_proj", "down_proj") else "self_attn"
        stem = f"base_model.model.model.layers.{layer}.{block}.{proj}"
        tensors[f"{stem}.lora_A.weight"] = a.to(torch.bfloat16)
        tensors[f"{stem}.lora_B.weight"] = b.to(torch.bfloat16)
    save_file(tensors, str(folder / "adapter_model.safetensors"))


def test_adapter_deltas_are_scale_b_a_and_undoing_the_teaching_reads_one(tmp_path):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 6, generator=g), torch.randn(8, 2, generator=g)
    a2, b2 = torch.randn(2, 8, generator=g), torch.randn(6, 2, generator=g)
    write_adapter(tmp_path / "ad", {(0, "q_proj"): (a, b), (1, "down_proj"): (a2, b2)})
    deltas = mech.adapter_deltas(tmp_path / "ad")
    expected = 2.0 * b.to(torch.bfloat16).double() @ a.to(torch.bfloat16).double()
    assert set(deltas) == {(0, "q"), (1, "down")} and torch.allclose(deltas[(0, "q")], expected)
    span = mech.TeachingSpan.from_adapter(tmp_path / "ad")
    before = {w: torch.randn(d.shape, generator=g) for w, d in deltas.items()}
    after = {w: before[w].double() - deltas[w] for w in deltas}
    record = mech.mechanism(after, before, span)
    assert set(record["kinds"]) == {"q", "down", "all"}
    assert record["kinds"]["all"]["share"] == pytest.approx(1.0, abs=1e-6)
    assert record["kinds"]["q"]["norm_ratio"] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="has no such weight"):
        mech.mechanism({}, before, span)


def test_module_names_map_to_layer_and_kind():
    assert mech.module_of("model.layers.3.self_attn.q_proj.weight") == (3, "q")
    assert mech.module_of("base_model.model.model.layers.12.mlp.down_proj.lora_B.weight") == (12, "down")
    assert mech.module_of("model.layers.3.input_layernorm.weight") is None
    assert mech.module_of("model.embed_tokens.weight") is None


def test_an_unchanged_module_costs_no_svd_and_counts_nothing():
    from bench.eval.mechanism import Subspaces, aggregate, module_mechanism

    basis = torch.eye(6, dtype=torch.float64)[:, :2]
    unchanged = module_mechanism(torch.zeros(6, 6), Subspaces(basis, basis), teach_energy=1.0)
    assert unchanged.energy == 0.0 and unchanged.col_angles_deg == [] and unchanged.row_angles_deg == []
    moved = module_mechanism(torch.outer(basis[:, 0], basis[:, 1]), Subspaces(basis, basis), teach_energy=1.0)
    kind = aggregate([unchanged, moved])
    assert kind.share == pytest.approx(1.0) and kind.col_angle_mean_deg == pytest.approx(0.0, abs=1e-6)
    assert kind.per_layer_share == [None, pytest.approx(1.0)]
