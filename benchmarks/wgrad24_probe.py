"""What the ``wgrad24`` suite needs beyond its loop: the corpus, the model, and the measurement of
the ``masked-tokens24`` weight gradients on one ELAS MLP's real activations."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Corpus:
    vocab: int
    batch_size: int
    seq_len: int
    lr: float
    sampler: object
    tokens: object
    measure_batch: torch.Tensor

    def train_batch(self, step: int) -> torch.Tensor:
        return self.sampler.batch(self.tokens, step)


def corpus(args, preset: str) -> Corpus:
    """The training CLI's default data: the embedded corpus, its cached BPE and token shards."""
    from elas_compile.data.loader import BatchSampler, eval_batches, split_streams
    from elas_compile.data.sources import embedded_source
    from elas_compile.data.store import token_store
    from elas_compile.data.tokenizer import source_tokenizer
    from elas_compile.train.presets import get_preset

    p = get_preset(preset)
    seq, batch = args.seq_len or p.seq_len, args.batch_size or p.batch_size
    source = embedded_source()
    tok = source_tokenizer(source, p.vocab_size, log=print)
    split = split_streams(token_store(source, tok, print).streams, 0.05, seq)
    return Corpus(vocab=tok.vocab_size, batch_size=batch, seq_len=seq, lr=args.lr or p.lr,
                  sampler=BatchSampler(split.n_train, seq, batch, args.seed, 0, 1), tokens=split.train,
                  measure_batch=eval_batches(split.val, seq, batch, 1)[0])


def model(preset: str, vocab: int, warmup: int, device: torch.device):
    import elas_compile
    from elas_compile.train.presets import build_model, preset_config

    torch.manual_seed(0)
    m = build_model(preset_config(preset, vocab)).to(device)
    return elas_compile.apply(m, elas_compile.ELASConfig(backward="masked", dense_warmup_steps=warmup))


def lm_loss(m, batch: torch.Tensor) -> torch.Tensor:
    logits = m(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))


def _rel(approx: torch.Tensor, exact: torch.Tensor) -> float:
    return ((approx - exact).norm() / exact.norm().clamp_min(1e-30)).item()


def mlp_stats(x: torch.Tensor, grad_out: torch.Tensor, mlp, fractions) -> list[dict]:
    """Per dense fraction: the exact-group shares of S and dy and the relative errors of the two
    weight gradients, from the MLP's input ``x`` and the gradient at its output (float32)."""
    from elas_compile.kernels import reference

    up, down = mlp.up_proj, mlp.down_proj
    if up.form != "plain" or up.bias is not None:
        raise ValueError("wgrad24 measures plain U·V MLPs without biases (ELASConfig defaults)")
    x, grad_out = x.reshape(-1, x.shape[-1]).float(), grad_out.reshape(-1, grad_out.shape[-1]).float()
    h = x @ up.v.float().t()
    y = h @ up.u.float().t()
    mask = reference.sparsify24_mask(reference.relu2(y))
    s = torch.where(mask, reference.relu2(y), torch.zeros(()))
    g = grad_out @ down.u.float()  # gradient at S Vdownᵀ
    dy = torch.where(mask, (g @ down.v.float()) * 2 * torch.relu(y), torch.zeros(()))
    exact_dv, exact_du = g.t() @ s, dy.t() @ h
    common = {"exact_S": reference.tokens24_exact_fraction(s), "exact_dy": reference.tokens24_exact_fraction(dy)}
    return [dict(common, dense_fraction=f,
                 err_dVdown=_rel(reference.tokens24_weight_grad(s, g, f).t(), exact_dv),
                 err_dUup=_rel(reference.tokens24_weight_grad(dy, h, f), exact_du)) for f in fractions]


def measure(m, batch: torch.Tensor, fractions, cuda: bool) -> list[dict]:
    """Rows per MLP and dense fraction, plus ``mean`` and ``worst`` over the MLPs."""
    import elas_compile

    mlps = elas_compile.elas_mlps(m)
    seen: dict = {}
    hooks = []
    for path, mlp in mlps:
        hooks.append(mlp.register_forward_hook(lambda mod, args, out, p=path: seen.setdefault(p, {}).update(
            x=args[0].detach())))
        hooks.append(mlp.register_full_backward_hook(lambda mod, gin, gout, p=path: seen[p].update(
            g=gout[0].detach())))
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = lm_loss(m, batch)
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
        m.zero_grad(set_to_none=True)
    rows = []
    for path, mlp in mlps:
        with torch.no_grad():
            for r in mlp_stats(seen[path]["x"], seen[path]["g"], mlp, fractions):
                rows.append(dict(r, mlp=path))
    for f in fractions:
        per = [r for r in rows if r["dense_fraction"] == f and r["mlp"] not in ("mean", "worst")]
        rows.append({"mlp": "mean", "dense_fraction": f,
                     **{k: sum(r[k] for r in per) / len(per) for k in ("exact_S", "exact_dy", "err_dVdown", "err_dUup")}})
        rows.append({"mlp": "worst", "dense_fraction": f, "exact_S": min(r["exact_S"] for r in per),
                     "exact_dy": min(r["exact_dy"] for r in per), "err_dVdown": max(r["err_dVdown"] for r in per),
                     "err_dUup": max(r["err_dUup"] for r in per)})
    return rows


def plot(rows, path, subtitle) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = [r for r in rows if r["mlp"] == "mean"]
    fractions = sorted({r["dense_fraction"] for r in mean})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    first = [r for r in mean if r["dense_fraction"] == fractions[0]]
    axes[0].plot([r["step"] for r in first], [r["exact_S"] for r in first], "o-", label="Sᵀ")
    axes[0].plot([r["step"] for r in first], [r["exact_dy"] for r in first], "s-", label="dyᵀ")
    axes[0].set(title="exact 4-token groups (mean over MLPs)", xlabel="step", ylabel="share")
    for ax, key, name in ((axes[1], "err_dVdown", "dVdown"), (axes[2], "err_dUup", "dUup")):
        for f in fractions:
            pts = [r for r in mean if r["dense_fraction"] == f]
            ax.plot([r["step"] for r in pts], [r[key] for r in pts], "o-", label=f"dense fraction {f}")
        ax.set(title=f"relative error of {name} (mean over MLPs)", xlabel="step", ylabel="‖approx − exact‖ / ‖exact‖")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(f"masked-tokens24 weight gradients on real activations\n{subtitle}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
