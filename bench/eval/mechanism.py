"""Mechanism diagnostics on a taught task: does an unlearning method undo the teaching adapter, or change the
model elsewhere?

The taught model is the base plus a LoRA adapter, ΔW_teach = scale · B · A per projection module (q, k, v, o,
gate, up, down of every layer). A method's change of the same weight is ΔW = W_unlearned − W_taught (a LoRA
method's merged adapter, or a full fine-tuning's change). Per module, with P_U the projector on the column
space of ΔW_teach and P_V the one on its row space:

  share      = ‖P_U ΔW P_V‖²_F / ‖ΔW‖²_F      the part of ΔW's energy inside span(ΔW_teach) (both sides)
  col share  = ‖P_U ΔW‖²_F / ‖ΔW‖²_F         only the output side (what the change writes)
  row share  = ‖ΔW P_V‖²_F / ‖ΔW‖²_F         only the input side (what the change reads)

Squared norms, so shares add over orthogonal parts (a ΔW that is half inside in energy reads 0.5) and a
module kind's share over layers is the energy-weighted mean (Σ‖P ΔW P‖² / Σ‖ΔW‖²): layers the method barely
changed count little. An isotropic random ΔW has share k_col·k_row / (out·in) in expectation (``chance``):
about 0.0008 for a rank-16 adapter on a 576 × 576 projection, so a share of a few percent already says "aimed".

Principal angles between the column (row) space of ΔW's top-k singular vectors and that of ΔW_teach (k: the
teaching adapter's rank, at most ΔW's numerical rank): 0° = the method writes (reads) along the same
directions as the teaching, 90° = orthogonal to them. Per module the mean and the smallest angle; per kind
the mean over layers.

Ranks are numerical: singular values above ``RANK_TOL`` × the largest count (fp32 rounding of W_unlearned −
W_taught leaves a floor of tiny singular values that are not part of the change).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

#: Relative singular-value threshold of a numerical rank (fp32 differences of weights near 1 carry ~1e-7
#: rounding; a trained change is far above 1e-4 of its largest singular value in the directions that matter).
RANK_TOL = 1e-4
#: Module kinds on the board, in order, and their projection names.
KINDS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
         "down": "down_proj"}
_MODULE = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(" + "|".join(KINDS.values()) + r")$")


@dataclass
class Subspaces:
    """Orthonormal bases of a matrix's column space (``cols``: out × k) and row space (``rows``: in × k)."""

    cols: torch.Tensor
    rows: torch.Tensor

    @property
    def rank(self) -> int:
        return int(self.cols.shape[1])


@dataclass
class ModuleMechanism:
    """One module's diagnostics (squared Frobenius norms, so a kind aggregates them by sums)."""

    energy: float  # ‖ΔW‖²_F
    inside: float  # ‖P_U ΔW P_V‖²_F
    col_inside: float  # ‖P_U ΔW‖²_F
    row_inside: float  # ‖ΔW P_V‖²_F
    chance: float  # k_col · k_row / (out · in): an isotropic random ΔW's expected share
    teach_energy: float  # ‖ΔW_teach‖²_F
    col_angles_deg: list[float] = field(default_factory=list)
    row_angles_deg: list[float] = field(default_factory=list)


@dataclass
class KindMechanism:
    """A module kind's diagnostics over the layers (energy-weighted shares, mean angles)."""

    share: float | None
    col_share: float | None
    row_share: float | None
    chance: float | None
    #: ‖ΔW‖_F / ‖ΔW_teach‖_F over the kind's modules: how large the method's change is beside the teaching's.
    norm_ratio: float | None
    col_angle_mean_deg: float | None
    row_angle_mean_deg: float | None
    col_angle_min_deg: float | None
    modules: int
    #: Per layer, in layer order: the module's share (None where the method did not change it).
    per_layer_share: list[float | None]


def subspaces(matrix: torch.Tensor, max_rank: int | None = None, tol: float = RANK_TOL) -> Subspaces:
    """Bases of ``matrix``'s column and row spaces: its left and right singular vectors whose singular values
    exceed ``tol`` × the largest, at most ``max_rank`` of them (the top ones)."""
    u, s, vh = torch.linalg.svd(matrix.to(torch.float64), full_matrices=False)
    keep = int((s > tol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    if max_rank is not None:
        keep = min(keep, max_rank)
    return Subspaces(u[:, :keep], vh[:keep].T)


def factored_subspaces(left: torch.Tensor, right: torch.Tensor, tol: float = RANK_TOL) -> tuple[Subspaces, float]:
    """``subspaces(left @ right)`` and its squared Frobenius norm without forming the product: for a rank-r factor
    pair (out × r, r × in), thin QRs of ``left`` and ``rightᵀ`` reduce the SVD to an r × r one (Q_l (R_l R_rᵀ)
    Q_rᵀ: the same singular values and vectors up to sign). The teaching adapter's 210 modules take well under a
    second this way against ~17 s of full SVDs of the 576 × 1536 products on 2 cores."""
    q_left, r_left = torch.linalg.qr(left.to(torch.float64))
    q_right, r_right = torch.linalg.qr(right.to(torch.float64).T)
    u, s, vh = torch.linalg.svd(r_left @ r_right.T)
    keep = int((s > tol * s[0]).sum()) if s.numel() and s[0] > 0 else 0
    return Subspaces(q_left @ u[:, :keep], q_right @ vh[:keep].T), float((s * s).sum())


def principal_angles(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Principal angles (degrees, ascending) between the spans of the orthonormal columns of ``a`` and ``b``:
    arccos of the singular values of aᵀb (Björck & Golub 1973); min(dim a, dim b) of them."""
    if a.shape[1] == 0 or b.shape[1] == 0:
        return []
    cosines = torch.linalg.svdvals(a.T.to(torch.float64) @ b.to(torch.float64)).clamp(0.0, 1.0)
    return sorted(math.degrees(math.acos(float(c))) for c in cosines)


def module_mechanism(delta: torch.Tensor, teach: Subspaces, teach_energy: float) -> ModuleMechanism:
    """Diagnostics of one module's change ``delta`` (out × in) against the teaching adapter's subspaces."""
    d = delta.to(torch.float64)
    u, v = teach.cols, teach.rows
    energy = float((d * d).sum())
    out_dim, in_dim = d.shape
    chance = teach.rank * teach.rank / (out_dim * in_dim)
    if energy == 0.0:  # a module the method left alone (LoRA on q and v leaves five kinds of seven): no SVD
        return ModuleMechanism(energy=0.0, inside=0.0, col_inside=0.0, row_inside=0.0, chance=chance,
                               teach_energy=teach_energy)
    left = u.T @ d  # k × in: coordinates of the change's columns in the teaching column space
    own = subspaces(d, max_rank=teach.rank)
    return ModuleMechanism(
        energy=energy, inside=float(((left @ v) ** 2).sum()), col_inside=float((left ** 2).sum()),
        row_inside=float(((d @ v) ** 2).sum()), chance=chance,
        teach_energy=teach_energy, col_angles_deg=principal_angles(own.cols, u),
        row_angles_deg=principal_angles(own.rows, v))


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def aggregate(modules: list[ModuleMechanism]) -> KindMechanism:
    """A kind's (or all kinds') diagnostics: energy-weighted shares, mean angles over modules that changed."""
    energy = sum(m.energy for m in modules)
    teach_energy = sum(m.teach_energy for m in modules)
    moved = [m for m in modules if m.energy > 0]
    return KindMechanism(
        share=_ratio(sum(m.inside for m in modules), energy),
        col_share=_ratio(sum(m.col_inside for m in modules), energy),
        row_share=_ratio(sum(m.row_inside for m in modules), energy),
        chance=_ratio(sum(m.chance * m.energy for m in modules), energy),
        norm_ratio=None if teach_energy <= 0 else math.sqrt(energy / teach_energy),
        col_angle_mean_deg=_mean([a for m in moved for a in [_mean(m.col_angles_deg)] if a is not None]),
        row_angle_mean_deg=_mean([a for m in moved for a in [_mean(m.row_angles_deg)] if a is not None]),
        col_angle_min_deg=_mean([m.col_angles_deg[0] for m in moved if m.col_angles_deg]),
        modules=len(modules),
        per_layer_share=[_ratio(m.inside, m.energy) for m in modules])


# -- models and adapters ---------------------------------------------------------------------------------
def module_of(name: str) -> tuple[int, str] | None:
    """(layer, kind) of a projection weight's or LoRA tensor's name (``...layers.3.self_attn.q_proj...``)."""
    stem = re.sub(r"\.(weight|lora_[AB]\.weight|lora_[AB]\.default\.weight|base_layer\.weight)$", "", name)
    match = _MODULE.search(stem)
    if match is None:
        return None
    kind = next(k for k, proj in KINDS.items() if proj == match.group(2))
    return int(match.group(1)), kind


def adapter_factors(adapter_dir: str | Path) -> dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]]:
    """(scale · B, A) of every projection module of a PEFT LoRA adapter folder (scale = α / r, or α / √r with
    rsLoRA), in fp64: ΔW = their product."""
    from safetensors.torch import load_file

    folder = Path(adapter_dir)
    config = json.loads((folder / "adapter_config.json").read_text())
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    parts: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        where = module_of(name)
        if where is not None:
            parts.setdefault(where, {})["A" if "lora_A" in name else "B"] = tensor.to(torch.float64)
    return {where: (scale * p["B"], p["A"]) for where, p in parts.items() if set(p) == {"A", "B"}}


def adapter_deltas(adapter_dir: str | Path) -> dict[tuple[int, str], torch.Tensor]:
    """ΔW = scale · B · A of every projection module of a PEFT LoRA adapter folder, in fp64."""
    return {where: b @ a for where, (b, a) in adapter_factors(adapter_dir).items()}


@dataclass
class TeachingSpan:
    """The teaching adapter's subspaces per module, computed once per (taught, oracle) pair."""

    bases: dict[tuple[int, str], Subspaces]
    energies: dict[tuple[int, str], float]

    @classmethod
    def from_adapter(cls, adapter_dir: str | Path) -> TeachingSpan:
        spans = {where: factored_subspaces(b, a) for where, (b, a) in adapter_factors(adapter_dir).items()}
        return cls({w: span for w, (span, _) in spans.items()}, {w: energy for w, (_, energy) in spans.items()})


def projection_weights(model: Any) -> dict[tuple[int, str], torch.Tensor]:
    """The projection weights of a plain (merged) model by (layer, kind). A model still wrapped with an
    unmerged LoRA adapter is refused: its ``weight`` is not the weight it computes with."""
    out = {}
    for name, tensor in model.state_dict().items():
        if "lora_" in name:
            raise ValueError("mechanism diagnostics need a merged model (the method returned an unmerged "
                             "adapter); end the method with bench.lm.training.merged(model, ctx)")
        where = module_of(name)
        if where is not None and name.endswith("weight"):
            out[where] = tensor
    return out


def taught_weights(model_dir: str | Path) -> dict[tuple[int, str], torch.Tensor]:
    """The projection weights of a saved model folder (the merged taught model), read from safetensors."""
    from safetensors import safe_open

    out = {}
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                where = module_of(name)
                if where is not None:
                    out[where] = handle.get_tensor(name)
    return out


def mechanism(after: dict[tuple[int, str], torch.Tensor], before: dict[tuple[int, str], torch.Tensor],
              span: TeachingSpan) -> dict[str, Any]:
    """The JSON record of a cell: per kind (q … down) and over all kinds, the diagnostics of ΔW = after −
    before against the teaching span. Modules outside the span (no teaching adapter there) are not counted."""
    per_kind: dict[str, list[ModuleMechanism]] = {k: [] for k in KINDS}
    for where in sorted(span.bases):
        if where not in after or where not in before:
            raise ValueError(f"layer {where[0]} {KINDS[where[1]]}: the teaching adapter changes it but the model "
                             "has no such weight (another architecture than the taught model?)")
        delta = after[where].to(torch.float64) - before[where].to(torch.float64)
        per_kind[where[1]].append(module_mechanism(delta, span.bases[where], span.energies[where]))
    kinds = {k: asdict(aggregate(mods)) for k, mods in per_kind.items() if mods}
    kinds["all"] = asdict(aggregate([m for mods in per_kind.values() for m in mods]))
    kinds["all"].pop("per_layer_share")
    return {"definition": "share = ||P_U dW P_V||_F^2 / ||dW||_F^2 with U, V the column and row spaces of the "
                          "teaching adapter's dW = scale*B*A; dW = W_unlearned - W_taught; energy-weighted over "
                          "layers; principal angles in degrees (bench.eval.mechanism)",
            "rank_tol": RANK_TOL, "kinds": kinds}


__all__ = ["KINDS", "KindMechanism", "ModuleMechanism", "Subspaces", "TeachingSpan", "adapter_deltas",
           "adapter_factors", "aggregate", "factored_subspaces", "mechanism", "module_mechanism", "principal_angles",
           "projection_weights", "subspaces", "taught_weights"]
