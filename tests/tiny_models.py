"""Tiny models for the tests: transformers' LLaMA family from tiny configs, and a hand-written
LLaMA-style nn.Module (no transformers). Nothing is downloaded."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 128


def _common(**extra):
    return dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
                pad_token_id=0, bos_token_id=1, eos_token_id=2, **extra)


def llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    return LlamaForCausalLM(LlamaConfig(**_common()))


def mistral():
    from transformers import MistralConfig, MistralForCausalLM
    return MistralForCausalLM(MistralConfig(**_common(sliding_window=None)))


def qwen2():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    return Qwen2ForCausalLM(Qwen2Config(**_common()))


def gemma():
    from transformers import GemmaConfig, GemmaForCausalLM
    return GemmaForCausalLM(GemmaConfig(**_common(head_dim=16)))


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class HandMLP(nn.Module):
    """The gate on the right of the product, to check operand order does not matter."""

    def __init__(self, d, f):
        super().__init__()
        self.w1, self.w3, self.w2 = nn.Linear(d, f, bias=False), nn.Linear(d, f, bias=False), nn.Linear(f, d, bias=False)

    def forward(self, x):
        return self.w2(self.w3(x) * F.silu(self.w1(x)))


class HandBlock(nn.Module):
    def __init__(self, d, f, heads):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.wqkv, self.wo = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.feed_forward = HandMLP(d, f)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.wqkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        x = x + self.wo(a.transpose(1, 2).reshape(b, t, d))
        return x + self.feed_forward(self.norm2(x))


class HandLlama(nn.Module):
    """A LLaMA-style decoder written by hand (gpt-fast style)."""

    def __init__(self, vocab=VOCAB, d=64, f=128, layers=2, heads=4):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(HandBlock(d, f, heads) for _ in range(layers))
        self.norm = RMSNorm(d)
        self.out = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids)
        for blk in self.blocks:
            x = blk(x)
        logits = self.out(self.norm(x))
        if labels is None:
            return logits
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))


def hand_llama():
    return HandLlama()


MODELS = {"llama": llama, "mistral": mistral, "qwen2": qwen2, "gemma": gemma, "hand_llama": hand_llama}


def loss_of(model, ids):
    out = model(input_ids=ids, labels=ids)
    return out if isinstance(out, torch.Tensor) else out.loss
