"""Token- and sequence-level quantities shared by every loss and likelihood probe.

All functions take logits ``[B, T, V]`` and labels ``[B, T]`` (``-100`` = ignored) and handle the
next-token shift themselves, so methods only combine these pieces (a method is little more than its
loss).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench.data.text import IGNORE


def shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Align logits at position t with the label at t+1; return (logits, labels, mask)."""
    logits = logits[:, :-1, :]
    labels = labels[:, 1:]
    mask = labels != IGNORE
    return logits, labels.masked_fill(~mask, 0), mask


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of each label token ``[B, T-1]`` (0 where masked) and the mask."""
    logits, targets, mask = shift(logits, labels)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over answer tokens of log p(y_t | y_<t, x): ``[B]``."""
    logp, _ = token_logprobs(logits, labels)
    return logp.sum(-1)


def mean_token_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over each sequence's answer tokens of log p: ``[B]`` (length-normalised likelihood)."""
    logp, mask = token_logprobs(logits, labels)
    return logp.sum(-1) / mask.sum(-1).clamp(min=1)


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Standard next-token CE averaged over all answer tokens in the batch (scalar)."""
    logits, targets, mask = shift(logits, labels)
    flat = F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="none")
    return (flat * mask.reshape(-1)).sum() / mask.sum().clamp(min=1)


def kl_on_answers(ref_logits: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_ref ‖ p_θ) of the next-token distributions, averaged over answer positions (scalar)."""
    ref, _, mask = shift(ref_logits, labels)
    cur, _, _ = shift(logits, labels)
    ref_logp = torch.log_softmax(ref.float(), dim=-1)
    cur_logp = torch.log_softmax(cur.float(), dim=-1)
    per_position = (ref_logp.exp() * (ref_logp - cur_logp)).sum(-1)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)
