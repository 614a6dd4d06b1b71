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


# --- transformers families from tiny configs (tests/test_families.py, tests/test_moe.py) -----------
# Sizes every family gets where its config has the field; FAMILIES adds what a family needs besides.
_TINY = dict(hidden_size=64, n_embd=64, d_model=64, intermediate_size=128, n_inner=128, ffn_hidden_size=128,
             ffn_dim=128, num_hidden_layers=2, n_layer=2, n_layers=2, num_layers=2, num_attention_heads=4,
             n_head=4, n_heads=4, num_heads=4, num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=64,
             n_positions=64, head_dim=16, moe_intermediate_size=64, expert_intermediate_size=64,
             shared_expert_intermediate_size=128, shared_intermediate_size=128, num_local_experts=4, num_experts=4,
             n_routed_experts=4, moe_num_experts=4, num_experts_per_tok=2, n_shared_experts=1,
             moe_num_shared_experts=1, first_k_dense_replace=1, kv_lora_rank=16, q_lora_rank=32,
             qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=16, n_group=1, topk_group=1, pad_token_id=0,
             bos_token_id=1, eos_token_id=2, mamba_d_state=8, mamba_n_heads=4, mamba_d_head=32, mamba_d_conv=4,
             mamba_expand=2, mamba_dt_rank=8, decoder_sparse_step=1, mlp_only_layers=[], linear_num_key_heads=2,
             linear_num_value_heads=4, linear_key_head_dim=16, linear_value_head_dim=16)

# family: (config class, model class, extra config fields). Names are transformers 5.25's.
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {}),
    "phi": ("PhiConfig", "PhiForCausalLM", {}),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
    "olmo": ("OlmoConfig", "OlmoForCausalLM", {}),
    "olmo2": ("Olmo2Config", "Olmo2ForCausalLM", {}),
    "olmo3": ("Olmo3Config", "Olmo3ForCausalLM", {}),
    "granite": ("GraniteConfig", "GraniteForCausalLM", {}),
    "cohere": ("CohereConfig", "CohereForCausalLM", {}),
    "cohere2": ("Cohere2Config", "Cohere2ForCausalLM", {}),
    "exaone4": ("Exaone4Config", "Exaone4ForCausalLM", {"sliding_window_pattern": 2}),
    "ernie4_5": ("Ernie4_5Config", "Ernie4_5ForCausalLM", {}),
    "hunyuan": ("HunYuanDenseV1Config", "HunYuanDenseV1ForCausalLM", {}),
    "helium": ("HeliumConfig", "HeliumForCausalLM", {}),
    "glm": ("GlmConfig", "GlmForCausalLM", {}),
    "glm4": ("Glm4Config", "Glm4ForCausalLM", {}),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", {}),
    "nemotron": ("NemotronConfig", "NemotronForCausalLM", {}),
    "arcee": ("ArceeConfig", "ArceeForCausalLM", {}),
    "stablelm": ("StableLmConfig", "StableLmForCausalLM", {}),
    "falcon": ("FalconConfig", "FalconForCausalLM", {}),
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", {}),
    "jamba": ("JambaConfig", "JambaForCausalLM", {"attn_layer_period": 2, "attn_layer_offset": 1}),
    "bamba": ("BambaConfig", "BambaForCausalLM", {"attn_layer_indices": [1]}),
    "lfm2": ("Lfm2Config", "Lfm2ForCausalLM", {}),
    "deepseek_v2": ("DeepseekV2Config", "DeepseekV2ForCausalLM", {}),
    "deepseek_v3": ("DeepseekV3Config", "DeepseekV3ForCausalLM", {"head_dim": 8}),
    "qwen2_moe": ("Qwen2MoeConfig", "Qwen2MoeForCausalLM", {}),
    "qwen3_next": ("Qwen3NextConfig", "Qwen3NextForCausalLM", {"layer_types": ["linear_attention", "full_attention"]}),
    "glm4_moe": ("Glm4MoeConfig", "Glm4MoeForCausalLM", {}),
    "ernie4_5_moe": ("Ernie4_5_MoeConfig", "Ernie4_5_MoeForCausalLM", {}),
    "dots1": ("Dots1Config", "Dots1ForCausalLM", {}),
    "llama4": ("Llama4TextConfig", "Llama4ForCausalLM", {}),
    "mixtral": ("MixtralConfig", "MixtralForCausalLM", {}),
    "qwen3_moe": ("Qwen3MoeConfig", "Qwen3MoeForCausalLM", {}),
    "olmoe": ("OlmoeConfig", "OlmoeForCausalLM", {}),
    "flex_olmo": ("FlexOlmoConfig", "FlexOlmoForCausalLM", {}),
    "phimoe": ("PhimoeConfig", "PhimoeForCausalLM", {}),
    "minimax": ("MiniMaxConfig", "MiniMaxForCausalLM", {}),
    "granitemoe": ("GraniteMoeConfig", "GraniteMoeForCausalLM", {}),
    "granitemoeshared": ("GraniteMoeSharedConfig", "GraniteMoeSharedForCausalLM", {}),
    "jetmoe": ("JetMoeConfig", "JetMoeForCausalLM", {}),
    "dbrx": ("DbrxConfig", "DbrxForCausalLM", {  # transformers 5.25's DBRX reads rope_theta and clip_qkv there
        "attn_config": {"kv_n_heads": 2, "rope_theta": 1e4, "clip_qkv": 8.0},
        "ffn_config": {"ffn_hidden_size": 64, "moe_num_experts": 4, "moe_top_k": 2}}),
    "gpt_oss": ("GptOssConfig", "GptOssForCausalLM", {}),
    "starcoder2": ("Starcoder2Config", "Starcoder2ForCausalLM", {}),
    "gptj": ("GPTJConfig", "GPTJForCausalLM", {"rotary_dim": 8}),
    "gpt_neo": ("GPTNeoConfig", "GPTNeoForCausalLM", {"attention_types": [[["global", "local"], 1]]}),
    "gpt_bigcode": ("GPTBigCodeConfig", "GPTBigCodeForCausalLM", {}),
    "codegen": ("CodeGenConfig", "CodeGenForCausalLM", {"rotary_dim": 8}),
    "bloom": ("BloomConfig", "BloomForCausalLM", {}),
    "mpt": ("MptConfig", "MptForCausalLM", {}),
    "falcon_h1": ("FalconH1Config", "FalconH1ForCausalLM", {"mamba_d_ssm": 128}),
    "seed_oss": ("SeedOssConfig", "SeedOssForCausalLM", {}),
    "apertus": ("ApertusConfig", "ApertusForCausalLM", {}),
    "bitnet": ("BitNetConfig", "BitNetForCausalLM", {}),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", {}),
}


def family(name: str):
    """A tiny, randomly initialised causal LM of transformers family ``name`` (FAMILIES)."""
    import transformers

    config_name, model_name, extra = FAMILIES[name]
    config_cls = getattr(transformers, config_name)
    default = config_cls()
    settable = {k: v for k, v in _TINY.items()
                if hasattr(default, k) and not isinstance(getattr(config_cls, k, None), property)}
    return getattr(transformers, model_name)(config_cls(**{**settable, **extra}))
