"""BERT's masking rules, the MLM loss only at masked positions, and the model's shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tokentango.model import BertClassifier, compute_losses, mask_tokens
from tokentango.tokenization import CLS_ID, MASK_ID, PAD_ID, SPECIAL_TOKENS

VOCAB = 1000


def batch(rows: int = 64, length: int = 200, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL_TOKENS), VOCAB, (rows, length), generator=g)
    ids[:, 0] = CLS_ID
    lengths = torch.randint(2, length + 1, (rows,), generator=g)
    ids[torch.arange(length)[None, :] >= lengths[:, None]] = PAD_ID
    return ids


def tiny_model() -> BertClassifier:
    torch.manual_seed(0)
    return BertClassifier(VOCAB, d_model=16, n_heads=2, n_layers=1, d_ff=32, max_length=200,
                          dropout=0.0, activation="relu", norm_first=False)  # fmt: skip


def test_never_masks_cls_or_pad() -> None:
    ids = batch()
    for seed in range(5):
        m = mask_tokens(ids, VOCAB, 0.15, torch.Generator().manual_seed(seed))
        assert not m.selected[ids == PAD_ID].any()
        assert not m.selected[:, 0].any()
        assert (m.input_ids[ids == PAD_ID] == PAD_ID).all()
        assert (m.input_ids[:, 0] == CLS_ID).all()


def test_about_15_percent_and_80_10_10() -> None:
    ids = batch(rows=256)
    real = (ids != PAD_ID) & (ids != CLS_ID)
    m = mask_tokens(ids, VOCAB, 0.15, torch.Generator().manual_seed(1))
    rate = m.selected.sum().item() / real.sum().item()
    assert 0.14 < rate < 0.16
    sel_in, sel_orig = m.input_ids[m.selected], ids[m.selected]
    n = len(sel_in)
    became_mask = (sel_in == MASK_ID).sum().item() / n
    unchanged = (sel_in == sel_orig).sum().item() / n
    random = ((sel_in != MASK_ID) & (sel_in != sel_orig)).sum().item() / n
    assert 0.78 < became_mask < 0.82
    assert 0.085 < unchanged < 0.115  # 10%, plus the rare random draw of the same id
    assert 0.085 < random < 0.11
    assert (sel_in[sel_in != MASK_ID] >= len(SPECIAL_TOKENS)).all()  # random ids are words
    assert torch.equal(m.targets, sel_orig)
    # Positions that were not selected are untouched.
    assert torch.equal(m.input_ids[~m.selected], ids[~m.selected])


def test_fresh_masks_every_batch() -> None:
    ids = batch()
    a = mask_tokens(ids, VOCAB, 0.15)
    b = mask_tokens(ids, VOCAB, 0.15)
    assert not torch.equal(a.selected, b.selected)


def test_mlm_loss_only_at_masked_positions() -> None:
    model = tiny_model()
    ids = batch(rows=8, length=40)
    m = mask_tokens(ids, VOCAB, 0.15, torch.Generator().manual_seed(2))
    hidden = model.encode(m.input_ids).detach().requires_grad_(True)
    logits = model.mlm_logits(hidden, m.selected)
    assert logits.shape == (int(m.selected.sum()), VOCAB)  # never batch x length x vocab
    F.cross_entropy(logits, m.targets).backward()
    grad_rows = hidden.grad.abs().sum(-1) > 0
    assert torch.equal(grad_rows, m.selected)


def test_mlm_head_is_tied_to_token_embeddings() -> None:
    model = tiny_model()
    names = {name for name, _ in model.named_parameters()}
    assert not any("decoder" in n or "mlm_out" in n for n in names)
    hidden = torch.randn(3, 5, 16)
    selected = torch.zeros(3, 5, dtype=torch.bool)
    selected[0, 1] = True
    expected = model.mlm_transform(hidden[0, 1]) @ model.tok_emb.weight.T + model.mlm_bias
    torch.testing.assert_close(model.mlm_logits(hidden, selected)[0], expected)


def test_padding_does_not_change_the_classification() -> None:
    model = tiny_model().eval()
    ids = batch(rows=4, length=30)
    padded = torch.cat([ids, torch.full((4, 20), PAD_ID)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(padded), rtol=1e-4, atol=1e-5)


def test_use_mlm_false_has_no_mlm_cost() -> None:
    model = tiny_model()
    ids, labels = batch(rows=8, length=40), torch.randint(0, 2, (8,))
    without = compute_losses(model, ids, labels, False, 0.15, 1.0)
    assert without.mlm is None and torch.equal(without.total, without.cls)
    with_mlm = compute_losses(model, ids, labels, True, 0.15, 1.0)
    assert with_mlm.mlm is not None and with_mlm.mlm.item() > 0
    # BERT's small init keeps the first MLM loss near log(vocab), not orders above it.
    assert with_mlm.mlm.item() < 2 * torch.log(torch.tensor(float(VOCAB))).item()


@pytest.mark.parametrize("init_std", [0.02, 0.125])
def test_weights_start_at_the_configured_std(init_std: float) -> None:
    """model.init_std: every linear and embedding weight starts normal(0, init_std); biases
    and layer norms as PyTorch sets them."""
    torch.manual_seed(0)
    model = BertClassifier(VOCAB, d_model=64, n_heads=4, n_layers=2, d_ff=256, max_length=200,
                           dropout=0.0, activation="gelu", norm_first=True,
                           init_std=init_std)  # fmt: skip
    stds = [float(m.weight.detach().std()) for m in model.modules()
            if isinstance(m, torch.nn.Linear | torch.nn.Embedding)]  # fmt: skip
    assert len(stds) == 12 and all(abs(s - init_std) < 0.25 * init_std for s in stds), stds
    assert all(float(m.bias.abs().max()) == 0 for m in model.modules()
               if isinstance(m, torch.nn.Linear))  # fmt: skip
