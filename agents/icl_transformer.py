"""The causal transformer AD and DPT share, with T2MIR's MoE FFN in the last block (shared leaf).

Pre-norm GPT blocks (LayerNorm -> causal self-attention -> residual; LayerNorm -> FFN ->
residual), a final LayerNorm. With ``moe`` set, the **last** block's FFN is
``agents/t2mir.py:T2MIRFFN`` (T2MIR replaces only that one; ``moe_layers = [n_layer - 1]`` in its
configs) and the block returns its balance and contrastive losses. Padding: ``valid`` (B, T)
marks real tokens; attention never reads a padded key (left padding, as the harness's
right-aligned contexts give). Also here: T2MIR's optimiser (AdamW, weight decay 1e-4, gradient
clip 1.0, linear warm-up then cosine decay to 0).

Deviations from the references, with reasons: AD's NormFormer norms and sigma-reparam linear layers
(T2MIR-AD's ``transformers_moe.py``) and GPT-2's exact block (T2MIR-DPT) are both replaced by this
one plain pre-norm block, so the two base models differ only in their tokens and targets, and
T2MIR's effect is measured against the same backbone; attention runs in float32 (the reference's
FlashAttention runs in bf16).
"""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from mtrl_bench.agents.t2mir import T2MIRFFN


@dataclass(frozen=True)
class MoEConfig:
    token_expert_dim: int = 768
    """Token MoE's total expert width (6 experts)."""
    task_expert_dim: int = 1536
    """Task MoE's total expert width."""
    task_experts: int = 8
    """Task MoE's experts (12 on DarkRoom-AD)."""
    balance_weight: float = 0.1
    """w_bal of the token MoE's balance loss."""
    contrastive_weight: float = 0.01
    """lambda of the task MoE's contrastive loss."""
    contrastive_softmax: bool = True
    """Contrast softmax gate scores (AD) or raw logits (DPT)."""
    tau: float = 0.005
    """EMA rate of the target gate."""
    token: bool = True
    """Use the token MoE (False: a plain FFN half; ablation)."""
    task: bool = True
    """Use the task MoE (False: a plain FFN half; ablation)."""


class Block(nn.Module):
    d: int
    heads: int
    dropout: float
    moe: MoEConfig | None = None

    @nn.compact
    def __call__(self, x: jax.Array, valid: jax.Array, loss_mask: jax.Array, train: bool):
        t = x.shape[1]
        causal = jnp.tril(jnp.ones((t, t), bool))
        mask = causal[None, None] & valid[:, None, None, :]
        h = nn.LayerNorm()(x)
        h = nn.MultiHeadDotProductAttention(self.heads, dropout_rate=self.dropout,
                                            deterministic=not train)(h, h, mask=mask)  # fmt: skip
        x = x + nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.LayerNorm()(x)
        zero = jnp.zeros(())
        aux = {"balance_loss": zero, "contrastive_loss": zero}
        if self.moe is None:
            h = nn.Dense(4 * self.d)(h)
            h = nn.Dense(self.d)(nn.Dropout(self.dropout, deterministic=not train)(nn.gelu(h)))
        else:
            m = self.moe
            h, aux = T2MIRFFN(m.token_expert_dim, m.task_expert_dim, m.task_experts,
                              m.balance_weight, m.contrastive_softmax, self.dropout, m.token,
                              m.task, name="t2mir")(h, loss_mask, train)  # fmt: skip
        return x + nn.Dropout(self.dropout, deterministic=not train)(h), aux


class Transformer(nn.Module):
    layers: int
    d: int
    heads: int
    dropout: float
    moe: MoEConfig | None = None

    @nn.compact
    def __call__(self, x: jax.Array, valid: jax.Array, loss_mask: jax.Array, train: bool):
        """``x`` (B, T, d) embedded tokens -> (hidden (B, T, d), aux losses of the MoE block).
        ``loss_mask`` (B, T): the tokens the task MoE's contrastive query averages."""
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
        aux = {}
        for i in range(self.layers):
            last = i == self.layers - 1
            x, a = Block(self.d, self.heads, self.dropout, self.moe if last else None,
                         name=f"block{i}")(x, valid, loss_mask, train)  # fmt: skip
            aux = a if last else aux
        return nn.LayerNorm()(x), aux


def optimizer(lr: float, steps: int, warmup: int, weight_decay: float = 1e-4,
              clip: float = 1.0) -> optax.GradientTransformation:  # fmt: skip
    """T2MIR's optimiser: AdamW, linear warm-up over ``warmup`` steps, cosine decay to 0."""
    warmup = min(warmup, max(1, steps // 10))
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, max(steps, warmup + 1), 0.0)
    return optax.chain(optax.clip_by_global_norm(clip),
                       optax.adamw(schedule, weight_decay=weight_decay))  # fmt: skip
