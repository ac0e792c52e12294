#!/usr/bin/python3
"""The Python PyTorch baseline of `cdrmix bench` row 4 (end-to-end training).

The same GPT that the row builds through cdrmix's model spec, written the way a
nanoGPT user writes it, trained with the same loop the cdrmix Trainer runs:

  emb -> ln0 -> per layer: x += att(ln1 x); x += ffn(ln2 x) -> ln_out -> head
  att: q, k, v, o projections without bias, rotate-half RoPE (theta 10000) on
       q and k, causal softmax(q k^T / sqrt(D)) v   (cdrmix's `attention` block)
  ffn: value(relu(key x)^2), hidden = expansion * width, no bias (`relu2`)
  norms: LayerNorm with bias; head: no bias, not tied to the embedding

A step: a batch of random windows from an in-memory token array, forward,
cross-entropy, backward, global gradient-norm clipping, AdamW with two
parameter groups (weight decay on >= 2-D weights only), learning rate from
warm-up + cosine, gradients set to None. Warm-up steps run first; the timed
steps each take their own time and the median gives tokens/s.

Prints one JSON line: {"tokens_per_s", "step_s", "params", "threads"}.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(seq, head_dim, theta):
    # As cdrmix's apply_rope: angles in float64, then cast; channel i pairs with i + D/2.
    half = head_dim // 2
    inv_freq = theta ** (torch.arange(half, dtype=torch.float64) * (-2.0 / head_dim))
    angles = torch.arange(seq, dtype=torch.float64).unsqueeze(1) * inv_freq
    cos = torch.cat([angles.cos(), angles.cos()], -1).float()
    sin = torch.cat([angles.sin(), angles.sin()], -1).float()
    return cos, sin


def apply_rope(x, cos, sin):
    half = x.size(-1) // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rotated * sin


class Attention(nn.Module):
    def __init__(self, width, heads, seq, theta):
        super().__init__()
        self.heads, self.head_dim = heads, width // heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.o_proj = nn.Linear(width, width, bias=False)
        cos, sin = rope_tables(seq, self.head_dim, theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        self.register_buffer("mask", torch.tril(torch.ones(seq, seq, dtype=torch.bool)), persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        H, D = self.heads, self.head_dim
        q = self.q_proj(x).view(B, T, H, D).transpose(1, 2)
        k = self.k_proj(x).view(B, T, H, D).transpose(1, 2)
        v = self.v_proj(x).view(B, T, H, D).transpose(1, 2)
        cos, sin = self.cos[:T], self.sin[:T]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.o_proj(y.transpose(1, 2).reshape(B, T, C))


class ReLU2(nn.Module):
    def __init__(self, width, expansion):
        super().__init__()
        self.key = nn.Linear(width, expansion * width, bias=False)
        self.value = nn.Linear(expansion * width, width, bias=False)

    def forward(self, x):
        return self.value(torch.relu(self.key(x)).square())


class Layer(nn.Module):
    def __init__(self, index, args):
        super().__init__()
        self.ln0 = nn.LayerNorm(args.width) if index == 0 else None
        self.ln1 = nn.LayerNorm(args.width)
        self.att = Attention(args.width, args.heads, args.seq, args.rope_theta)
        self.ln2 = nn.LayerNorm(args.width)
        self.ffn = ReLU2(args.width, args.ffn_expansion)

    def forward(self, x):
        if self.ln0 is not None:
            x = self.ln0(x)
        x = x + self.att(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.emb = nn.Embedding(args.vocab, args.width)
        self.blocks = nn.ModuleList(Layer(i, args) for i in range(args.layers))
        self.ln_out = nn.LayerNorm(args.width)
        self.head = nn.Linear(args.width, args.vocab, bias=False)

    def forward(self, idx, targets):
        x = self.emb(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_out(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def make_optimizer(model, args):
    # cdrmix's rule: decay matrices (>= 2-D tensors named *weight), not norms.
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and n.endswith("weight")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and n.endswith("weight"))]
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)


def lr_at(step, args, total):
    # cdrmix's LrSchedule "cosine": linear warm-up from 0, then cosine to min_lr.
    if step < args.lr_warmup:
        return args.lr * (step + 1) / args.lr_warmup
    progress = min(max((step - args.lr_warmup) / max(1, total - args.lr_warmup), 0.0), 1.0)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1.0 + math.cos(math.pi * progress))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seq", type=int, default=64)
    p.add_argument("--vocab", type=int, default=65)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--ffn-expansion", type=int, default=4)
    p.add_argument("--rope-theta", type=float, default=10000.0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--lr-warmup", type=int, default=2)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--grad-clip", type=float, default=1.0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    model = GPT(args)
    model.train()
    optimizer = make_optimizer(model, args)
    data = torch.randint(0, args.vocab, (1 << 20,), dtype=torch.int64)
    total = args.warmup + args.steps

    def get_batch():
        ix = torch.randint(len(data) - args.seq - 1, (args.batch,))
        rows = torch.stack([data[i : i + args.seq + 1] for i in ix.tolist()])
        return rows[:, :-1], rows[:, 1:]

    times = []
    for step in range(total):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args, total)
        x, y = get_batch()
        loss = model(x, y)
        if not math.isfinite(loss.item()):  # the Trainer checks every step's loss too
            raise SystemExit(f"training diverged at step {step + 1}")
        loss.backward()
        if not math.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip).item()):
            raise SystemExit(f"training diverged at step {step + 1}: the gradient norm is not finite")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)

    step_s = statistics.median(times)
    print(json.dumps({"tokens_per_s": args.batch * args.seq / step_s, "step_s": step_s,
                      "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
