"""A small BERT: token + position embeddings -> transformer encoder -> CLS and MLM heads.

Reads top to bottom: the masking that makes the MLM objective, then the model, then the
losses. The MLM head is tied to the token embeddings and is evaluated only at masked
positions, so no batch x length x vocabulary tensor is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tokentango.tokenization import MASK_ID, PAD_ID, SPECIAL_TOKENS

N_CLASSES = 2


# --- MLM masking (BERT): fresh every batch ------------------------------------------


@dataclass
class MaskedBatch:
    input_ids: torch.Tensor  # (B, L) ids with the selected positions corrupted
    selected: torch.Tensor  # (B, L) bool: positions that carry the MLM loss
    targets: torch.Tensor  # (n_selected,) original ids at the selected positions


def mask_tokens(
    ids: torch.Tensor, vocab_size: int, mask_prob: float,
    generator: torch.Generator | None = None,
) -> MaskedBatch:  # fmt: skip
    """Select `mask_prob` of the real tokens (never [CLS] or [PAD]); of those, 80% become
    [MASK], 10% a random ordinary token and 10% stay as they are."""
    real = ids >= len(SPECIAL_TOKENS)  # excludes [PAD], [CLS] and the other specials
    draw = torch.rand(ids.shape, generator=generator, device=ids.device)
    selected = real & (draw < mask_prob)
    # Reuse the same uniform draw, rescaled inside the selected band, to pick 80/10/10.
    action = draw / mask_prob
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    random_ids = torch.randint(
        len(SPECIAL_TOKENS), vocab_size, ids.shape, generator=generator, device=ids.device
    )
    input_ids = torch.where(to_mask, torch.full_like(ids, MASK_ID), ids)
    input_ids = torch.where(to_random, random_ids, input_ids)
    return MaskedBatch(input_ids, selected, ids[selected])


# --- model ---------------------------------------------------------------------------


class EncoderBlock(nn.Module):
    """Self-attention + feed-forward, each with a residual. `norm_first=False` is PyTorch's
    TransformerEncoderLayer default (post-norm), which the original used."""

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float, activation: str,
        norm_first: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.n_heads = n_heads
        self.norm_first = norm_first
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attn_out = nn.Linear(d_model, d_model)
        self.ff = nn.Sequential(
            nn.Linear(d_model, d_ff),
            # In place: saves writing a batch x length x d_ff tensor (79 MB at `original`).
            nn.GELU() if activation == "gelu" else nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(d_ff, d_model),
        )
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def attention(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (t.view(batch, length, self.n_heads, -1).transpose(1, 2) for t in (q, k, v))
        p = self.dropout.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=p)
        return self.attn_out(y.transpose(1, 2).reshape(batch, length, width))

    def forward(self, x: torch.Tensor, attend: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self.attention(self.norm1(x), attend))
            return x + self.dropout(self.ff(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attention(x, attend)))
        return self.norm2(x + self.dropout(self.ff(x)))


class BertClassifier(nn.Module):
    def __init__(
        self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, d_ff: int,
        max_length: int, dropout: float, activation: str, norm_first: bool,
        init_std: float = 0.02,
    ) -> None:  # fmt: skip
        super().__init__()
        self.vocab_size = vocab_size
        self.max_length = max_length
        # The architecture settings by config key, to name what differs when a checkpoint
        # does not fit.
        self.settings = {"model.d_model": d_model, "model.n_heads": n_heads,
                         "model.n_layers": n_layers, "model.d_ff": d_ff,
                         "data.max_length": max_length}  # fmt: skip
        self.tok_emb = nn.Embedding(vocab_size, d_model, padding_idx=PAD_ID)
        self.pos_emb = nn.Embedding(max_length, d_model)
        self.emb_norm = nn.LayerNorm(d_model)
        self.emb_drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(d_model, n_heads, d_ff, dropout, activation, norm_first)
            for _ in range(n_layers)
        )
        self.final_norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.cls_head = nn.Linear(d_model, N_CLASSES)
        # BERT's MLM transform; the output projection reuses tok_emb.weight (tied).
        self.mlm_transform = nn.Sequential(
            nn.Linear(d_model, d_model), nn.GELU(), nn.LayerNorm(d_model)
        )
        self.mlm_bias = nn.Parameter(torch.zeros(vocab_size))
        self.init_std = init_std
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        # BERT's initialisation (std 0.02) by default: small normal weights keep the tied MLM
        # logits sane. At width 64 that is 6x below 1/sqrt(d_model), which leaves the [CLS]
        # state almost the same for every input at first: Adam moves off that at once,
        # SGD barely does (README, optimizer study), hence model.init_std.
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, std=self.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, d_model) hidden states; no position attends to [PAD]."""
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.emb_drop(self.emb_norm(self.tok_emb(ids) + self.pos_emb(positions)))
        attend = (ids != PAD_ID)[:, None, None, :]  # (B, 1, 1, L) key mask
        for block in self.blocks:
            x = block(x, attend)
        return self.final_norm(x)

    def classify(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.cls_head(hidden[:, 0])  # the [CLS] state

    def mlm_logits(self, hidden: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits at the selected positions only: (n_selected, vocab)."""
        h = self.mlm_transform(hidden[selected])
        return h @ self.tok_emb.weight.T + self.mlm_bias

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encode(ids))


def build_model(model_cfg, vocab_size: int, max_length: int) -> BertClassifier:
    """The encoder described by a `model/` config, sized to the tokenizer (its vocabulary
    and its row length, `data.max_length`)."""
    return BertClassifier(
        vocab_size=vocab_size, d_model=model_cfg.d_model, n_heads=model_cfg.n_heads,
        n_layers=model_cfg.n_layers, d_ff=model_cfg.d_ff, max_length=max_length,
        dropout=model_cfg.dropout, activation=model_cfg.activation,
        norm_first=model_cfg.norm_first, init_std=model_cfg.init_std,
    )  # fmt: skip


# --- losses --------------------------------------------------------------------------


@dataclass
class Losses:
    total: torch.Tensor
    cls: torch.Tensor
    mlm: torch.Tensor | None


def compute_losses(
    model: BertClassifier, ids: torch.Tensor, labels: torch.Tensor, use_mlm: bool,
    mask_prob: float, mlm_weight: float,
) -> Losses:  # fmt: skip
    """Cross-entropy on [CLS]; with `use_mlm`, plus the MLM loss on a freshly masked copy
    of the batch (one encoder pass serves both heads)."""
    if not use_mlm:
        cls_loss = F.cross_entropy(model(ids), labels)
        return Losses(cls_loss, cls_loss, None)
    masked = mask_tokens(ids, model.vocab_size, mask_prob)
    hidden = model.encode(masked.input_ids)
    cls_loss = F.cross_entropy(model.classify(hidden), labels)
    if masked.targets.numel() == 0:
        mlm_loss = hidden.sum() * 0.0  # keeps the graph; no position was selected
    else:
        mlm_loss = F.cross_entropy(model.mlm_logits(hidden, masked.selected), masked.targets)
    return Losses(cls_loss + mlm_weight * mlm_loss, cls_loss, mlm_loss)
